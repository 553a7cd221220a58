"""What a recipe is, and the one registry of them.

A recipe is one module with one :class:`Recipe` object, ``RECIPE``: its name, its random stream,
the arrays it adds to a ``shapenet`` store (with what each holds: :class:`ArraySpec`'s role,
points, frame and parameters), how it samples one shape from the outer surface that every recipe
shares, the sample sets ``sdfkit.torch`` reads, and its exporters. The pipeline, the loader,
``sdfkit validate`` and ``sdfkit export`` loop over the registry; the store records every array's
spec in its ``specs`` attribute, so that checking or reading a store needs nothing from the code
that wrote it.

Adding a recipe is one module and its tests. A package of its own registers it through the entry
point group ``sdfkit.recipes`` (``my_recipe = "my_package.my_recipe:RECIPE"`` in its
``pyproject.toml``); :func:`recipes` finds it in every process, worker processes included.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from sdfkit.errors import InputError
from sdfkit.store.format import ArraySpec

__all__ = [
    "Recipe",
    "Exporter",
    "ExportContext",
    "recipes",
    "recipe",
    "exporters",
    "sample_sets",
    "sample_set_arrays",
    "specs_for",
    "shape_file",
    "shape_folder",
    "CATEGORY_FOLDER",
    "ENTRY_POINTS",
]

ENTRY_POINTS = "sdfkit.recipes"
"""The entry-point group of recipes from other packages."""


@dataclass(frozen=True)
class ExportContext:
    """What an exporter knows besides the shape: where the export goes and how it is named."""

    out: Path
    """Where the export will be once it is whole (files are written to a temporary sibling)."""
    dataset: str = "ShapeNetV2"
    """DeepSDF's dataset name in its paths and split files."""
    relative_to: Path = Path(".")
    """The folder that paths written into index files are relative to (NDF's split entries)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """What the generic exporters need besides (``npz``: the arrays to write)."""
    meshes: Mapping[str, str] = field(default_factory=dict)
    """Shape id -> its mesh file, for exporters that render (``needs_meshes``)."""
    seed: int = 0
    """The store's seed: what an exporter draws is a function of it and the shape's id."""


@dataclass(frozen=True)
class Exporter:
    """``sdfkit export --to NAME``: another project's dataset layout, written from a store."""

    name: str
    description: str
    write_shape: Callable[[dict, Path, ExportContext], int]
    """Write one shape (a row of the store: arrays by name, ``id``, ``category``, ``split``) into
    the temporary folder; returns the number of files written."""
    write_index: Callable[[Path, dict, ExportContext], int] = lambda tmp, listing, context: 0
    """Write the files that list the shapes (split files, metadata) from ``listing``: split ->
    category -> ids, in export order; returns the number of files written."""
    kinds: tuple[str, ...] = ("shapenet",)
    """Store kinds it reads."""
    needs_meshes: bool = False
    """Whether it reads the shapes' meshes too (``ExportContext.meshes``: from the store's source
    tree, or ``--meshes`` where it moved)."""


@dataclass(frozen=True)
class Recipe:
    """One way of sampling a shape for one project (see the module doc)."""

    name: str
    stream: int
    """Its random stream: the shape's generator is ``shape_rng(seed, id, stream)``; stream 0 is
    the outer surface's. Two recipes never share one, so adding a recipe changes no other's values."""
    description: str
    """One line: what it adds, for ``--help``."""
    specs: Callable[[Mapping[str, Any]], list[ArraySpec]]
    """The arrays it adds, given the run's parameters (``samples``, ``surface_samples``, ...)."""
    sample: Callable[..., dict]
    """``sample(mesh, signed, *, rng, parameters) -> {array name: value}`` for one shape: ``mesh``
    as loaded, ``signed`` its :class:`~sdfkit.recipes.deepsdf.SignedMesh` (shared by all)."""
    sample_sets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Sample set name -> the arrays ``sdfkit.torch`` reads together, window by window."""
    exporters: tuple[Exporter, ...] = ()
    module: str = ""
    """Where it is defined (filled in by the registry)."""

    def array_specs(self, parameters: Mapping[str, Any]) -> list[ArraySpec]:
        """Its specs with ``recipe`` and ``sample_set`` filled in, as the store records them."""

        member = {name: key for key, names in self.sample_sets.items() for name in names}
        return [replace(s, recipe=self.name, sample_set=member.get(s.name, "")) for s in self.specs(parameters)]


_BUILTIN = ("deepsdf", "deepsdf_test", "occnet", "ifnet", "ndf", "vecset")
"""The modules of sdfkit's own recipes, in the order their arrays are laid out."""


@cache
def recipes() -> dict[str, Recipe]:
    """Every recipe, by name: sdfkit's own, then those of the ``sdfkit.recipes`` entry points."""

    found: dict[str, Recipe] = {}
    for module in _BUILTIN:
        _add(found, importlib.import_module(f"sdfkit.recipes.{module}").RECIPE, f"sdfkit.recipes.{module}")
    for point in entry_points(group=ENTRY_POINTS):
        try:
            loaded = point.load()
        except Exception as exc:
            raise InputError(f"recipe plug-in {point.value!r} cannot be loaded: {exc}; fix or uninstall it") from None
        if not isinstance(loaded, Recipe):
            raise InputError(f"recipe plug-in {point.value!r} is a {type(loaded).__name__}, not a sdfkit Recipe")
        _add(found, loaded, point.value)
    return found


def _add(found: dict, item: Recipe, where: str) -> None:

    if item.name in found:
        raise InputError(f"two recipes are named {item.name!r} ({found[item.name].module} and {where}); rename one")
    streams = {r.stream: r.name for r in found.values()}
    if item.stream in streams or item.stream <= 0:
        raise InputError(
            f"recipe {item.name!r} ({where}) draws from stream {item.stream}, "
            f"{'the outer surface' if item.stream <= 0 else 'which ' + streams[item.stream] + ' draws from'}; "
            "give it a stream of its own"
        )
    found[item.name] = replace(item, module=where)


def recipe(name: str) -> Recipe:
    """The recipe called ``name``; a one-line error listing the others when there is none."""
    table = recipes()
    if name not in table:
        raise InputError(f"unknown recipe {name!r}; choose from {', '.join(table)}")
    return table[name]


def exporters() -> dict[str, tuple[Recipe, Exporter]]:
    """``--to`` name -> (its recipe, the exporter), over every recipe."""
    out = {}
    for item in recipes().values():
        for exporter in item.exporters:
            out[exporter.name] = (item, exporter)
    return out


def sample_sets() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Sample set -> (its recipe, its arrays), over every recipe."""
    return {name: (item.name, arrays) for item in recipes().values() for name, arrays in item.sample_sets.items()}


def sample_set_arrays(info: dict, sample_set: str) -> tuple[tuple[str, ...], str]:
    """The arrays of ``sample_set`` in a store (its ``specs`` attribute names them; a store made
    before it did: the registry's recipes) and the recipe that makes them: (arrays, recipe).
    The arrays are empty when the store does not hold the set."""
    recorded = info.get("specs")
    if recorded is not None:
        names = tuple(name for name, spec in recorded.items() if spec.get("sample_set") == sample_set)
        if names:  # the store names them: the recipes (half a second to import) are not needed
            return names, recorded[names[0]].get("recipe", "")
    known = sample_sets()
    if sample_set in known:  # a store that records specs and has none of the set's: empty
        recipe, names = known[sample_set]
        held = recorded is None and all(n in info.get("arrays", []) for n in names)
        return (names if held else ()), recipe
    choices = sorted({*known, *(spec.get("sample_set") for spec in (recorded or {}).values())} - {"", None})
    raise InputError(f"unknown sample set {sample_set!r}; choose from {', '.join(choices)}")


def specs_for(names: Sequence[str], parameters: Mapping[str, Any]) -> list[ArraySpec]:
    """Every array of the recipes ``names`` (in registry order), given the run's parameters."""
    return [s for name, item in recipes().items() if name in names for s in item.array_specs(parameters)]


CATEGORY_FOLDER = "shapes"
"""The category folder of shapes without a category (a plain folder of meshes) in layouts that
need one (OccNet's loader reads every folder beside the split files as a category)."""


def shape_file(root: Path, *parts: str) -> Path:
    """``root/parts...`` with its folder made; empty parts (no category) are left out."""
    path = root.joinpath(*[p for p in parts if p])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def shape_folder(root: Path, shape: dict) -> Path:
    """``root/<category>/<id>`` (made), ``shapes`` standing in for no category."""
    folder = root / (shape["category"] or CATEGORY_FOLDER) / shape["id"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def nan_spec(name: str, shape: tuple[int, ...], dtype: str = "float32", **kwargs) -> ArraySpec:
    """An array whose rows start (and, for a failed shape, stay) at NaN, or 0 for integers."""
    fill = float("nan") if np.dtype(dtype).kind == "f" else 0
    return ArraySpec(name, shape, dtype, fill, **kwargs)
