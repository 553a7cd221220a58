"""Training configs: :class:`TrainConfig` (every value checked where it is made), the presets,
and how a run's config is resolved from a preset, a replayed config.json and the command line.

No torch here: the command line reads its choices from this module without loading PyTorch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

from sdfkit.errors import InputError

__all__ = [
    "TrainConfig",
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
    """Everything that defines a training run (saved as RUN_DIR/config.json)."""

    model: str = "metasdf"
    """metasdf, autodecoder, hypernet or cnp."""
    context: str = "dense"
    """dense (grid samples with values) or levelset (zero-level-set points)."""
    context_points: int = 1024
    """Context size: MetaSDF uses 1024 (dense) and 512 (level set)."""
    batch_size: int = 32
    """Tasks (digits) per outer step."""
    micro_batch: int | None = 8
    """Tasks per forward/backward pass, gradients summed over the step: the same step, but
    small enough to stay in a CPU's caches (measured fastest at 4-8 on 2 cores). None: the
    whole batch at once (best on a GPU)."""
    steps: int = 20_000
    """Outer steps in all (a resumed run continues up to this count)."""
    lr: float = 1e-4
    """Adam learning rate of the outer loop."""
    lr_schedule: str = "constant"
    """Outer learning rate over the run: ``constant``, or ``cosine`` (half a cosine from ``lr``
    down to 0 at ``steps``; set ``steps`` to what the time budget allows). The rate follows from
    the step, so a resumed run continues on the same curve; resuming with more ``steps`` stretches it."""
    clip_grad: float | None = None
    """Clip the outer gradient's norm to this value (none: no clipping)."""
    hidden: int = 256
    """Width of the SDF network's hidden layers."""
    depth: int = 3
    """Hidden layers: 3 gives four linear layers, 2 -> 256 -> 256 -> 256 -> 1."""
    init: str = "sal"
    """sal (geometric initialization, the authors' choice) or kaiming."""
    inner_steps: int = 5
    """MetaSDF: gradient steps of the inner loop."""
    inner_lr: float = 0.1
    """MetaSDF: initial inner learning rate."""
    lr_type: str = "per-param"
    """MetaSDF: learned learning rates per-param (and per step), per-step, or global."""
    first_order: bool = False
    """MetaSDF: drop second-order terms of the inner loop (faster, less accurate)."""
    test_steps: int | None = None
    """MetaSDF: inner-loop steps at test time (eval, reconstruct); None: ``inner_steps``. Steps
    past ``inner_steps`` repeat the last step's learned learning rates; on the 3D cpu preset 10
    steps instead of 3 cut the mean Chamfer distance by a quarter for 0.03 s more per shape
    (docs/results-3d.md). Changeable after training: ``sdfkit eval/reconstruct --test-steps``."""
    inner_loss: str = "l2"
    """MetaSDF: error of the inner loop on the context, ``l2`` (squared) or ``l1``; in 3D the
    distance term of the composite loss (the 3D ``paper`` preset keeps the paper's l1). The outer
    loss and the evaluation are l1 either way. l2 steps scale with the error, l1 steps only see
    its sign: on the 2D cpu preset l2 reached a quarter of l1's held-out error in the same time
    (docs/results-2d.md), on the 3D cpu preset half its Chamfer distance (docs/results-3d.md)."""
    latent: int = 256
    """Auto-decoders and CNP: size of the latent code."""
    test_iters: int = 800
    """Auto-decoders: latent optimization steps at test time."""
    seed: int = 0
    """Seed of the initialization and of every batch."""
    log_every: int = 10
    """Write a metrics row every N steps."""
    checkpoint_every: int = 500
    """Save a checkpoint every N steps (also at the end, on Ctrl-C and at --time-limit)."""
    split: str = "train"
    """Split of the store to train on."""
    limit: int | None = None
    """Use only the first N shapes of the split."""
    data_kind: str = "mnist"
    """The store's kind: ``mnist`` (2D models) or ``shapenet`` (3D models)."""
    target_points: int = 4096
    """3D: SDF samples per task on which the outer loss is measured."""
    loss: str = "composite"
    """3D MetaSDF: ``composite`` (sign BCE + distance l1, learned Kendall weights) or ``l1``
    (DeepSDF's l1 clamped at 0.1). The 3D baselines use clamped l1."""
    dropout: float = 0.2
    """3D DeepSDF: dropout of its decoder."""
    test_lr: float = 5e-3
    """3D DeepSDF: Adam learning rate of the test-time latent optimization."""

    def __post_init__(self):
        """Every value checked where the config is made (a preset, a replayed config.json, a
        command line): a bad one is one line naming the key, what it was and what it may be."""
        choices = {
            "data_kind": tuple(MODELS_BY_KIND),
            "context": CONTEXTS,
            "lr_schedule": LR_SCHEDULES,
            "init": ("sal", "kaiming"),
            "lr_type": ("per-param", "per-step", "global"),
            "inner_loss": INNER_LOSSES,
            "loss": LOSSES,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise InputError(f"config: {key} is {getattr(self, key)!r}; choose one of {', '.join(allowed)}")
        if self.model not in MODELS_BY_KIND[self.data_kind]:
            raise InputError(
                f"config: model {self.model!r} does not train on {self.data_kind!r} stores; "
                f"choose one of {', '.join(MODELS_BY_KIND[self.data_kind])}"
            )
        positive = ("context_points", "batch_size", "steps", "hidden", "depth", "inner_steps", "latent")
        positive += ("test_iters", "target_points", "log_every", "checkpoint_every")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"config: {key} is {value!r}; it must be a whole number of at least 1")
        for key in ("micro_batch", "test_steps", "limit"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"config: {key} is {value!r}; it must be null or a whole number of at least 1")
        for key in ("lr", "inner_lr", "test_lr"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise InputError(f"config: {key} is {value!r}; it must be a number above 0")
        if self.clip_grad is not None and not (isinstance(self.clip_grad, int | float) and self.clip_grad > 0):
            raise InputError(f"config: clip_grad is {self.clip_grad!r}; it must be null or a number above 0")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise InputError(f"config: dropout is {self.dropout!r}; it must be at least 0 and below 1")
        if not isinstance(self.first_order, bool):
            raise InputError(f"config: first_order is {self.first_order!r}; it must be true or false")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InputError(f"config: seed is {self.seed!r}; it must be a whole number")
        if not isinstance(self.split, str) or not self.split:
            raise InputError(f"config: split is {self.split!r}; give a split name such as train")


CONTEXTS = ("dense", "levelset")
LOSSES = ("composite", "l1")
"""3D MetaSDF's outer loss."""
INNER_LOSSES = ("l2", "l1")
LR_SCHEDULES = ("constant", "cosine")
MODELS_BY_KIND = {
    "mnist": ("metasdf", "autodecoder", "hypernet", "cnp"),
    "shapenet": ("metasdf", "deepsdf", "pointnet"),
}


PRESETS = {
    # the paper's 2D hyper-parameters (GPU users)
    "paper": TrainConfig(),
    # learns real shapes on a 2-core CPU in minutes: narrower network, fewer points and tasks
    "cpu": TrainConfig(
        batch_size=16, hidden=128, context_points=512, lr=5e-4, inner_steps=3, steps=3000, test_iters=300, latent=128
    ),
}


PRESETS_3D = {
    # the paper's 3D networks: 8 x 512 (dense), 7 x 512 (level set), 256-d latent codes (GPU users)
    "paper": TrainConfig(
        data_kind="shapenet",
        inner_loss="l1",
        hidden=512,
        depth=8,
        batch_size=16,
        micro_batch=None,
        context_points=8192,
        target_points=16384,
        inner_steps=5,
        inner_lr=1e-3,
        lr=1e-4,
        latent=256,
        test_iters=800,
        steps=50_000,
        checkpoint_every=1000,
    ),
    # learns make-shapes categories on a 2-core CPU in about 30 minutes; the squared inner loss,
    # outer lr 1e-3 and 10 inner steps at test time are measured choices (docs/results-3d.md)
    "cpu": TrainConfig(
        data_kind="shapenet",
        inner_loss="l2",
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


def preset(name: str, *, model: str, context: str, kind: str = "mnist") -> TrainConfig:
    """The preset's config for a model, a context and a kind of store."""
    presets = PRESETS_3D if kind == "shapenet" else PRESETS
    if name not in presets:
        raise InputError(f"unknown preset {name!r}; choose {', '.join(presets)}")
    if model not in MODELS_BY_KIND.get(kind, ()):
        raise InputError(
            f"model {model!r} does not train on {kind!r} stores; choose {', '.join(MODELS_BY_KIND.get(kind, ()))}"
        )
    config = replace(presets[name], model=model, context=context)
    if kind == "mnist" and context == "levelset":  # the paper's level-set context: 512 points
        config = replace(config, context_points=min(config.context_points, 512))
    if kind == "shapenet" and context == "levelset" and model == "metasdf" and name == "paper":
        config = replace(config, depth=7)  # the paper's level-set network: 7 x 512
    return config


def store_kind(store) -> str:
    """The kind of a store (``mnist`` or ``shapenet``), which picks the 2D or 3D models."""
    from sdfkit.store.format import open_store

    return open_store(store).attrs["sdfkit"].get("kind")


def resolve_config(
    store,
    *,
    preset_name: str = "cpu",
    model: str = "metasdf",
    context: str = "dense",
    config_file: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    **overrides,
) -> TrainConfig:
    """The config a run trains with: a replayed ``config_file``, the run's own config.json when
    resuming, else the preset for the store's kind; then the ``overrides`` that are not None.
    Every value is checked (:class:`TrainConfig`)."""
    if config_file is not None:
        config = config_from_json(config_file)
    elif resume and run_dir is not None and (Path(run_dir) / "config.json").exists():
        config = config_from_json(Path(run_dir) / "config.json")
    else:
        config = preset(preset_name, model=model, context=context, kind=store_kind(store))
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def main_process() -> bool:
    """Whether this process logs and saves: not a torchrun worker of rank above 0."""
    import os

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
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{path}: unknown config keys {', '.join(unknown)}")
    data.setdefault("inner_loss", "l1")  # written before the choice existed: trained with l1
    try:
        return TrainConfig(**data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
