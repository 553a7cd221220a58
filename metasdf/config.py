"""Training configs: :class:`TrainConfig` (every value checked where it is made), the presets,
and how a run's config is resolved from a preset, a replayed config.json and the command line.

No torch here: the command line reads its choices from this module without loading PyTorch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import SimpleNamespace

from metasdf.sections import (
    CNPConfig,
    CodeConfig,
    EvaluationConfig,
    LossConfig,
    MetaSDFConfig,
    NetworkConfig,
    OptimizerConfig,
    TaskConfig,
)
from sdfkit.errors import InputError
from sdfkit.store.format import open_store
from sdfkit.store.state import StoreState

__all__ = [
    "TrainConfig",
    "SECTIONS",
    "SECTION_TYPES",
    "CONTEXTS",
    "LOSSES",
    "INNER_LOSSES",
    "LR_SCHEDULES",
    "MODELS_BY_KIND",
    "PRESETS",
    "PRESETS_3D",
    "preset",
    "config_from_json",
    "resolve_config",
    "store_kind",
    "run_store",
    "main_process",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as RUN_DIR/config.json): the run's own
    settings, then a section each for the optimizer, the network, the tasks, MetaSDF's inner loop,
    the losses, the latent codes, the CNP and the evaluation. Make one from settings by name with
    :meth:`create`, change one with :meth:`replace`; :meth:`settings` gives them all by name."""

    model: str = "metasdf"
    """metasdf, autodecoder, hypernet or cnp."""
    context: str = "dense"
    """dense (grid samples with values) or levelset (zero-level-set points)."""
    data_kind: str = "mnist"
    """The store's kind: ``mnist`` (2D models) or ``shapenet`` (3D models)."""
    split: str = "train"
    """Split of the store to train on."""
    limit: int | None = None
    """Use only the first N shapes of the split."""
    seed: int = 0
    """Seed of the initialization and of every batch."""
    log_every: int = 10
    """Write a metrics row every N steps."""
    checkpoint_every: int = 500
    """Save a checkpoint every N steps (also at the end, on Ctrl-C and at --time-limit)."""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    metasdf: MetaSDFConfig = field(default_factory=MetaSDFConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    codes: CodeConfig = field(default_factory=CodeConfig)
    cnp: CNPConfig = field(default_factory=CNPConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self):
        """Every value checked where the config is made (:func:`_check`)."""
        latent_in = _check(self.settings())
        object.__setattr__(self, "codes", replace(self.codes, latent_in=latent_in))

    @classmethod
    def create(cls, **settings) -> TrainConfig:
        """A config from settings by name, whichever section holds them; the rest at their defaults."""
        return cls().replace(**settings)

    def replace(self, **settings) -> TrainConfig:
        """This config with settings by name changed, whichever section holds them."""
        unknown = sorted(set(settings) - set(SECTION_OF))
        if unknown:
            raise InputError(f"config: unknown settings {', '.join(unknown)}")
        changes = {k: v for k, v in settings.items() if SECTION_OF[k] == "run"}
        for section in SECTION_TYPES:
            given = {k: v for k, v in settings.items() if SECTION_OF[k] == section}
            if given:
                changes[section] = replace(getattr(self, section), **given)
        return replace(self, **changes)

    def settings(self) -> dict:
        """Every setting by name, the sections' included (names are unique across sections)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in SECTION_TYPES}
        for section in SECTION_TYPES:
            part = getattr(self, section)
            values |= {f.name: getattr(part, f.name) for f in fields(part)}
        return values


SECTION_TYPES = {
    "optimizer": OptimizerConfig,
    "network": NetworkConfig,
    "tasks": TaskConfig,
    "metasdf": MetaSDFConfig,
    "losses": LossConfig,
    "codes": CodeConfig,
    "cnp": CNPConfig,
    "evaluation": EvaluationConfig,
}
"""The sections of :class:`TrainConfig`, by attribute."""

SECTIONS: dict[str, tuple[str, ...]] = {
    "run": tuple(f.name for f in fields(TrainConfig) if f.name not in SECTION_TYPES),
    **{name: tuple(f.name for f in fields(kind)) for name, kind in SECTION_TYPES.items()},
}
"""Each setting's name by section: how config.json nests them, how ``sdfkit train --show-config``
prints a config, and how docs/training.md groups them."""

SECTION_OF = {name: section for section, names in SECTIONS.items() for name in names}
"""The section of each setting."""


def _check(values: dict) -> tuple:
    """Every setting checked (a preset, a replayed config.json, a command line): a bad one is one
    line naming the key, what it was and what it may be. Returns ``latent_in`` as a tuple (a JSON
    list reads back as one)."""
    v = SimpleNamespace(**values)
    choices = {
        "data_kind": tuple(MODELS_BY_KIND),
        "context": CONTEXTS,
        "lr_schedule": LR_SCHEDULES,
        "init": ("sal", "reference", "kaiming"),
        "outer_loss": INNER_LOSSES,
        "frame": FRAMES,
        "code_reg": CODE_REGS,
        "distance_term": DISTANCE_TERMS,
        "lr_type": ("per-param", "per-step", "global"),
        "inner_loss": INNER_LOSSES,
        "loss": LOSSES,
        "deepsdf_loss": DEEPSDF_LOSSES,
        "sigma": ("log", "direct"),
    }
    for key, allowed in choices.items():
        if values[key] not in allowed:
            raise InputError(f"config: {key} is {values[key]!r}; choose one of {', '.join(allowed)}")
    if v.model not in MODELS_BY_KIND[v.data_kind]:
        raise InputError(
            f"config: model {v.model!r} does not train on {v.data_kind!r} stores; "
            f"choose one of {', '.join(MODELS_BY_KIND[v.data_kind])}"
        )
    positive = ("context_points", "batch_size", "steps", "hidden", "depth", "inner_steps", "latent")
    positive += ("encoder_layers", "hyper_layers", "mesh_resolution")
    positive += (
        "test_iters",
        "target_points",
        "log_every",
        "checkpoint_every",
        "lr_step_epochs",
        "code_reg_warmup",
    )
    for key in positive:
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"config: {key} is {value!r}; it must be a whole number of at least 1")
    for key in ("micro_batch", "test_steps", "limit", "test_samples", "epochs"):
        value = values[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InputError(f"config: {key} is {value!r}; it must be null or a whole number of at least 1")
    for key in ("lr", "inner_lr", "test_lr"):
        value = values[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            raise InputError(f"config: {key} is {value!r}; it must be a number above 0")
    for key in ("clip_grad", "clip_grad_value", "extra_step_lr", "code_lr", "code_init_std", "code_bound", "clamp"):
        value = values[key]
        if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            raise InputError(f"config: {key} is {value!r}; it must be null or a number above 0")
    if not (isinstance(v.lr_step_factor, int | float) and 0 < v.lr_step_factor <= 1):
        raise InputError(f"config: lr_step_factor is {v.lr_step_factor!r}; it must be above 0 and at most 1")
    if not (isinstance(v.dropout, int | float) and 0 <= v.dropout < 1):
        raise InputError(f"config: dropout is {v.dropout!r}; it must be at least 0 and below 1")
    for key in ("first_order", "clamp_lr", "test_lr_drop", "balanced_targets", "targets_include_context"):
        if not isinstance(values[key], bool):
            raise InputError(f"config: {key} is {values[key]!r}; it must be true or false")
    latent_in = v.latent_in if isinstance(v.latent_in, list | tuple) else [v.latent_in]
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in latent_in):
        raise InputError(f"config: latent_in is {v.latent_in!r}; it must be a list of layer numbers from 1")
    if not isinstance(v.seed, int) or isinstance(v.seed, bool):
        raise InputError(f"config: seed is {v.seed!r}; it must be a whole number")
    if not isinstance(v.split, str) or not v.split:
        raise InputError(f"config: split is {v.split!r}; give a split name such as train")
    return tuple(latent_in)


CONTEXTS = ("dense", "levelset")
LOSSES = ("composite", "l1")
"""3D MetaSDF's outer loss."""
DEEPSDF_LOSSES = ("clamped-l1", "composite")
"""3D DeepSDF's training loss."""
INNER_LOSSES = ("l2", "l1")
LR_SCHEDULES = ("constant", "cosine", "step")
FRAMES = ("sdfkit", "reference")
"""2D frames and ground-truth conventions (TrainConfig.frame)."""
CODE_REGS = ("sdfkit", "deepsdf", "reference")
DISTANCE_TERMS = ("unsigned", "signed")
MODELS_BY_KIND = {
    "mnist": ("metasdf", "autodecoder", "hypernet", "cnp"),
    "shapenet": ("metasdf", "deepsdf", "pointnet"),
}


PRESETS = {
    # the paper's appendix and the reference code (vsitzmann/metasdf), field by field: docs/fidelity.md
    "paper": TrainConfig.create(
        batch_size=32,
        micro_batch=None,
        context_points=1024,  # 32^2 dense points; 512 level-set points (preset())
        hidden=256,
        depth=3,  # 2 -> 256 -> 256 -> 256 -> 1: the code's ReLUFC(num_hidden_layers=2)
        init="reference",
        inner_steps=5,
        inner_lr=0.1,
        lr_type="per-param",
        clamp_lr=False,
        inner_loss="l2",
        outer_loss="l2",
        frame="reference",
        lr=1e-4,
        latent=256,
        test_iters=800,
        encoder_layers=4,  # the paper's CNP set encoder (supplement Table 1; 9 its variant)
        latent_in=(2,),  # the concatenation auto-decoder: the code joins the input and the third layer
        hyper_layers=3,  # meta_modules.HyperNetwork: FCBlock(256, 1 hidden layer) per tensor
        code_init_std=1e-3,  # meta_modules.AutoDecoder: normal_(0, 1e-3)
        code_reg="reference",
    ),
    # learns real shapes on a 2-core CPU in minutes: narrower network, fewer points and tasks
    "cpu": TrainConfig.create(
        batch_size=16, hidden=128, context_points=512, lr=5e-4, inner_steps=3, steps=3000, test_iters=300, latent=128
    ),
}


PRESETS_3D = {
    # the paper's appendix and the reference code's planes/tables curriculum (3D/curriculums.py,
    # 3D/scripts/run_train.py), DeepSDF's specs.json for the DeepSDF baseline: docs/fidelity.md
    "paper": TrainConfig.create(
        data_kind="shapenet",
        loss="composite",
        inner_loss="l1",
        distance_term="signed",
        hidden=512,
        depth=9,  # ReLUFC(num_hidden_layers=8): 3 -> 512 x 9 -> 2; the level-set network one fewer
        init="reference",
        batch_size=32,
        micro_batch=None,
        context_points=12_000,  # 24,000 balanced samples per scene, half context, half targets
        target_points=12_000,
        balanced_targets=True,
        targets_include_context=True,  # levelset_data.meta_split: query = every sample, context included
        inner_steps=5,
        inner_lr=5e-3,
        lr_type="per-param",
        clamp_lr=False,
        extra_step_lr=1e-2,
        lr=5e-4,
        lr_schedule="step",
        lr_step_epochs=350,
        lr_step_factor=0.5,
        clip_grad_value=0.5,
        latent=256,
        dropout=0.2,
        code_lr=1e-3,
        code_init_std=None,
        code_bound=1.0,
        code_reg="deepsdf",
        code_reg_warmup=100,
        test_iters=800,
        test_lr=5e-3,
        test_lr_drop=True,
        test_samples=8000,
        steps=50_000,
        epochs=3000,  # the reference's planes/tables curricula (3D/curriculums.py: num_epochs 3000)
        mesh_resolution=256,  # reconstruction.py meshes at 256^3
        sigma="direct",  # the reference learns sigma itself (nn.Parameter(torch.ones(2)))
        checkpoint_every=1000,
    ),
    # learns make-shapes categories on a 2-core CPU in about 30 minutes; the squared inner loss,
    # outer lr 1e-3, 10 inner steps at test time and the signed distance term are measured
    # choices (docs/results-3d.md)
    "cpu": TrainConfig.create(
        data_kind="shapenet",
        inner_loss="l2",
        distance_term="signed",
        hidden=128,
        depth=4,
        batch_size=8,
        micro_batch=None,
        context_points=1024,
        target_points=2048,
        inner_steps=3,
        inner_lr=1e-2,
        lr=1e-3,
        latent=128,
        dropout=0.0,
        test_iters=300,
        test_lr=1e-2,
        test_steps=10,
        steps=20_000,
    ),
}


PRESET_CHANGES: list[tuple[tuple[str | None, str | None, str | None, str | None], dict]] = [
    # ((kind, preset, model, context), changes), None matching any; applied in order
    (("mnist", None, None, "levelset"), {"context_points": 512}),  # the paper's level-set context: 512 points
    # the supplement: encoders and MetaSDF 50 epochs, auto-decoders 150
    (("mnist", "paper", "metasdf", None), {"epochs": 50}),
    (("mnist", "paper", "cnp", None), {"epochs": 50}),
    (("mnist", "paper", "autodecoder", None), {"epochs": 150}),
    (("mnist", "paper", "hypernet", None), {"epochs": 150}),
    # the paper's level-set network is one layer shallower (7 x 512 hidden) and trained with plain l1
    (("shapenet", "paper", "metasdf", "levelset"), {"depth": 8, "loss": "l1", "clamp": None, "context_points": 10_000}),
    # DeepSDF's specs.json: 8 x 512, 64 scenes x 16,384 samples (it has no context), 2,001 epochs,
    # rates halved every 500; Table 2's DeepSDF trains with the composite loss
    (
        ("shapenet", "paper", "deepsdf", None),
        {
            "depth": 8,
            "batch_size": 64,
            "target_points": 16_384,
            "targets_include_context": False,
            "lr_step_epochs": 500,
            "clip_grad_value": None,
            "epochs": 2001,
            "deepsdf_loss": "composite",
        },
    ),
    (("shapenet", "paper", "pointnet", None), {"depth": 8, "context_points": 10_000}),
]
"""How a preset differs by kind of store, model and context: the data :func:`preset` applies to
``PRESETS`` or ``PRESETS_3D`` (``sdfkit train --show-config`` prints the result)."""


def preset(name: str, *, model: str, context: str, kind: str = "mnist") -> TrainConfig:
    """The preset's config for a model, a context and a kind of store."""
    presets = PRESETS_3D if kind == "shapenet" else PRESETS
    if name not in presets:
        raise InputError(f"unknown preset {name!r}; choose {', '.join(presets)}")
    if model not in MODELS_BY_KIND.get(kind, ()):
        raise InputError(
            f"model {model!r} does not train on {kind!r} stores; choose {', '.join(MODELS_BY_KIND.get(kind, ()))}"
        )
    config = presets[name].replace(model=model, context=context)
    for (when_kind, when_preset, when_model, when_context), changes in PRESET_CHANGES:
        if all(
            w is None or w == v
            for w, v in ((when_kind, kind), (when_preset, name), (when_model, model), (when_context, context))
        ):
            config = config.replace(**changes)
    return config


def store_kind(store) -> str:
    """The kind of a store (``mnist`` or ``shapenet``), which picks the 2D or 3D models."""

    return StoreState.read(open_store(store)).kind


def resolve_config(
    store,
    *,
    preset_name: str | None = None,
    model: str | None = None,
    context: str | None = None,
    config_file: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    **overrides,
) -> TrainConfig:
    """The config a run trains with: a replayed ``config_file``, the run's own config.json when
    resuming, else the preset (default ``cpu``, ``metasdf``, ``dense``) for the store's kind; then
    the ``overrides`` that are not None. Every value is checked (:class:`TrainConfig`).

    A config file holds every setting: a preset given beside one is an input error (it would be
    dropped), and so is a model or context other than the file's."""
    source = None
    if config_file is not None:
        source, option = Path(config_file), f"--config {config_file}"
    elif resume and run_dir is not None and (Path(run_dir) / "config.json").exists():
        source, option = Path(run_dir) / "config.json", f"--resume of {run_dir}"
    if source is None:
        return _with_overrides(
            preset(preset_name or "cpu", model=model or "metasdf", context=context or "dense", kind=store_kind(store)),
            overrides,
        )
    if preset_name is not None:
        raise InputError(
            f"--preset {preset_name} and {option}: the config ({source}) holds every setting, so the preset would be "
            "dropped; give one of them (override single settings with their own options)"
        )
    config = config_from_json(source)
    for name, value in (("model", model), ("context", context)):
        if value is not None and value != getattr(config, name):
            raise InputError(
                f"--{name} {value} and {option}: the config ({source}) trains {name} {getattr(config, name)}; "
                f"drop --{name}, or train a new run folder"
            )
    return _with_overrides(config, overrides)


def _with_overrides(config: TrainConfig, overrides: dict) -> TrainConfig:
    """``config`` with the options a user gave (those not None)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if config.model == "deepsdf" and "loss" in given:  # --loss picks DeepSDF's own loss
        given["deepsdf_loss"] = "clamped-l1" if given.pop("loss") == "l1" else "composite"
    if "steps" in given and "epochs" not in given:  # a length in steps replaces one in epochs
        given["epochs"] = None
    return config.replace(**given)


def main_process() -> bool:
    """Whether this process logs and saves: not a torchrun worker of rank above 0."""

    return int(os.environ.get("RANK", "0")) == 0


def run_store(run_dir: Path) -> str:
    """The store a run was trained on, as :func:`train` recorded it in RUN_DIR/data.json."""
    data = Path(run_dir) / "data.json"
    try:
        return json.loads(data.read_text())["store"]
    except (OSError, ValueError, KeyError):
        raise InputError(f"{run_dir}: does not record its store; give it: sdfkit eval {run_dir} DATA.zarr") from None


def config_from_json(path: Path) -> TrainConfig:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read the config ({exc}); give a config.json written by sdfkit train"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a config; give a config.json written by sdfkit train")
    # sections nest their settings; a config.json written before there were sections is flat
    settings = {}
    for key, value in data.items():
        settings |= value if key in SECTION_TYPES and isinstance(value, dict) else {key: value}
    unknown = sorted(set(settings) - set(SECTION_OF))
    if unknown:
        raise InputError(f"{path}: unknown config keys {', '.join(unknown)}")
    if not set(data) & set(SECTION_TYPES):  # flat: written before sections, maybe before the choice
        settings.setdefault("inner_loss", "l1")  # of inner loss existed: trained with l1
    try:
        return TrainConfig.create(**settings)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
