"""The package as a user installs it: one version, and every package the code imports declared."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from conftest import ROOT

from sdfkit import _version

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_DECLARED = {"pyrender"}
"""Installed by scripts/setup.sh with ``--no-deps`` after the ``render`` extra: its own PyOpenGL
pin cannot render headless, so naming it in pyproject.toml would make pip install that pin."""


def _distribution_name(name: str) -> str:
    return re.split(r"[<>=!~\[; ]", name, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_one_version():
    """pyproject.toml's version is the one a source tree reports when sdfkit is not installed."""
    source = (ROOT / "sdfkit" / "_version.py").read_text()
    fallback = re.search(r'__version__ = "([^"]+)"', source).group(1)
    assert PYPROJECT["project"]["version"] == fallback
    assert _version.__version__ in (fallback, importlib.metadata.version("sdfkit"))


def test_every_imported_package_is_declared():
    """Each third-party module that sdfkit/, metasdf/ and cli/ import (at the top or inside a
    function) belongs to a distribution that pyproject.toml names, as a dependency or in an extra."""
    declared = {_distribution_name(d) for d in PYPROJECT["project"]["dependencies"]}
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        declared |= {_distribution_name(d) for d in extra}
    ours = {"sdfkit", "metasdf", "cli"}
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for folder in ours:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in ours or top in NOT_DECLARED or top in sys.stdlib_module_names or top == "__future__":
                        continue
                    distributions = {_distribution_name(d) for d in owners.get(top, [top])}
                    if not distributions & declared:
                        missing.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


LAYERS = (
    ("sdfkit._version", "sdfkit.errors", "sdfkit._epochs"),
    ("sdfkit.geometry",),
    ("sdfkit.rendering",),
    ("sdfkit.store",),
    ("sdfkit.recipes",),
    ("sdfkit.pipeline",),
    ("sdfkit.sources",),
    ("sdfkit.builders", "sdfkit.env", "sdfkit"),
    ("sdfkit.torch",),
    ("metasdf",),
    ("cli",),
)
"""The packages from the bottom up: a module imports its own layer or those below it."""


def _module_imports() -> dict[str, set[str]]:
    """Each module of sdfkit/, metasdf/ and cli/ -> the modules of ours it imports, anywhere in
    its code (inside functions too)."""
    modules = {}
    for folder in ("sdfkit", "metasdf", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path

    def ours(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in map(ours, targets) if m and m != name}
    return graph


def _layer(module: str) -> int:
    for k, names in enumerate(LAYERS):
        if any(module == n or (module.startswith(n + ".") and n != "sdfkit") for n in names):
            return k
    raise AssertionError(f"{module} is in no layer of LAYERS")


def test_the_import_graph_points_down_and_has_no_circle():
    """No module imports one of a higher layer (LAYERS), and no chain of imports comes back to
    where it started."""
    graph = _module_imports()
    upward = sorted(f"{a} -> {b}" for a, bs in graph.items() for b in bs if _layer(b) > _layer(a))
    assert not upward, upward
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            assert state.get(nxt) != 1, f"import circle: {' -> '.join([*path, module, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_the_wheel_lists_every_package_and_installs_cli_under_its_own_name():
    """pyproject.toml's package list is every folder of sdfkit/ and metasdf/ that is a package,
    and cli/, which installs as sdfkit_cli (a top-level ``cli`` would collide with other
    distributions'); the command points into it."""
    tool = PYPROJECT["tool"]["setuptools"]
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for d in ("sdfkit", "metasdf")
        for p in (ROOT / d).rglob("__init__.py")
    }
    assert set(tool["packages"]) == folders | {"sdfkit_cli"}
    assert tool["package-dir"] == {"sdfkit_cli": "cli"} and (ROOT / "cli" / "__init__.py").exists()
    assert PYPROJECT["project"]["scripts"]["sdfkit"] == "sdfkit_cli.main:main"
