"""Training configs: :class:`TrainConfig` (every value checked where it is made), the presets,
and how a run's config is resolved from a preset, a replayed config.json and the command line.

No torch here: the command line reads its choices from this module without loading PyTorch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from sdfkit.errors import InputError
from sdfkit.store.format import open_store
from sdfkit.store.state import StoreState

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


SECTIONS: dict[str, tuple[str, ...]] = {
    "run": ("model", "context", "data_kind", "split", "limit", "seed", "log_every", "checkpoint_every"),
    "length and optimizer": (
        "steps", "epochs", "batch_size", "micro_batch", "lr", "lr_schedule", "lr_step_epochs", "lr_step_factor",
        "clip_grad", "clip_grad_value",
    ),
    "network": ("hidden", "depth", "init", "dropout"),
    "tasks": ("context_points", "target_points", "balanced_targets", "targets_include_context", "frame"),
    "metasdf": (
        "inner_steps", "inner_lr", "lr_type", "first_order", "clamp_lr", "extra_step_lr", "test_steps", "inner_loss",
    ),
    "losses": ("outer_loss", "loss", "sigma", "distance_term", "clamp", "deepsdf_loss"),
    "latent codes (auto-decoders, deepsdf)": (
        "latent", "latent_in", "hyper_layers", "test_iters", "test_lr", "test_lr_drop", "test_samples", "code_lr",
        "code_init_std", "code_bound", "code_reg", "code_reg_warmup",
    ),
    "cnp": ("encoder_layers",),
    "evaluation": ("mesh_resolution",),
}  # fmt: skip
"""The fields of :class:`TrainConfig` by what they set, each in one section: how
``sdfkit train --show-config`` prints a config, and how docs/training.md groups them."""


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
    epochs: int | None = None
    """The run's length in epochs (an epoch: as many tasks as the training split has shapes):
    ``steps`` becomes ceil(epochs x shapes / batch) when the run starts (the paper: 50 for the 2D
    encoders and MetaSDF, 150 for the auto-decoders; the 3D reference 3,000, DeepSDF 2,001).
    None: ``steps`` as given."""
    lr: float = 1e-4
    """Adam learning rate of the outer loop."""
    lr_schedule: str = "constant"
    """Outer learning rate over the run: ``constant``, ``cosine`` (half a cosine from ``lr``
    down to 0 at ``steps``; set ``steps`` to what the time budget allows) or ``step`` (times
    ``lr_step_factor`` every ``lr_step_epochs`` epochs, as the MetaSDF and DeepSDF references do;
    an epoch is as many tasks as the split has shapes). The rate follows from the step, so a
    resumed run continues on the same curve; resuming with more ``steps`` stretches a cosine."""
    lr_step_epochs: int = 350
    """``step`` schedule: epochs between two decays (MetaSDF's 3D reference: 350; DeepSDF: 500)."""
    lr_step_factor: float = 0.5
    """``step`` schedule: the factor of each decay (both references: 0.5)."""
    clip_grad: float | None = None
    """Clip the outer gradient's norm to this value (none: no clipping)."""
    clip_grad_value: float | None = None
    """Clip every element of the outer gradient to +- this value (MetaSDF's 3D reference: 0.5)."""
    hidden: int = 256
    """Width of the SDF network's hidden layers."""
    depth: int = 3
    """Hidden layers: 3 gives four linear layers, 2 -> 256 -> 256 -> 256 -> 1."""
    init: str = "sal"
    """sal (geometric initialization: the network starts as the SDF of a sphere), reference (the
    MetaSDF code's SAL: the last layer's weights constant and its bias 0) or kaiming."""
    inner_steps: int = 5
    """MetaSDF: gradient steps of the inner loop."""
    inner_lr: float = 0.1
    """MetaSDF: initial inner learning rate."""
    lr_type: str = "per-param"
    """MetaSDF: learned learning rates per-param (and per step), per-step, or global."""
    first_order: bool = False
    """MetaSDF: drop second-order terms of the inner loop (faster, less accurate)."""
    clamp_lr: bool = True
    """MetaSDF: clamp the learned inner learning rates at 0 (the reference code does not)."""
    extra_step_lr: float | None = None
    """MetaSDF: with more test-time steps than ``inner_steps``, None repeats the last step's
    learned rates in the extra steps (sdfkit); a number is the fixed rate of every step of such a
    loop, as the reference code has it (1e-2, meta_modules.py)."""
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
    outer_loss: str = "l1"
    """2D models: the training loss on the targets, ``l1`` or ``l2`` (the mean squared error, as
    the reference code trains)."""
    frame: str = "sdfkit"
    """2D: what the models see. ``sdfkit``: the store's frame ([-1, 1]^2, cell centres, SDF with
    the half-cell correction, docs/mnist.md). ``reference``: the MetaSDF code's (pixel corners
    (row / R - 0.5, column / R - 0.5), the image spanning 1, SDF the plain difference of two
    distance transforms divided by R), computed from the store's grid. Evaluation scores both
    frames' metrics whichever a model trained in."""
    latent: int = 256
    """Auto-decoders and CNP: size of the latent code."""
    encoder_layers: int = 3
    """2D CNP: linear layers of the set encoder (the paper: 4, and a 9-layer variant)."""
    latent_in: tuple[int, ...] = ()
    """2D concatenation auto-decoder: layers (from 0) that take [x, code] again beside their
    input (the paper's: the third layer, ``[2]``); none: the input only."""
    hyper_layers: int = 1
    """2D hypernetwork: 1, one linear head per weight tensor added to learned base weights
    (sdfkit); 3, the reference's MLP per tensor (hidden 256) that gives the whole tensor."""
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
    sigma: str = "log"
    """3D MetaSDF's composite loss: its learned weights as ``log`` sigma (sdfkit) or ``direct``
    sigma from 1 (the reference: ``nn.Parameter(torch.ones(2))``, meta_modules.py:34-35);
    the same loss, another path for the optimizer."""
    deepsdf_loss: str = "clamped-l1"
    """3D DeepSDF's training loss: ``clamped-l1`` (DeepSDF's own) or ``composite`` (a sign head
    and a distance head with learned weights, as the paper trains its Table 2 DeepSDF; its
    clamped l1 is the text's separate remark)."""
    test_lr: float = 5e-3
    """3D DeepSDF: Adam learning rate of the test-time latent optimization."""
    test_lr_drop: bool = False
    """3D DeepSDF: divide the test-time learning rate by 10 halfway (DeepSDF's reconstruct.py)."""
    test_samples: int | None = None
    """3D DeepSDF: SDF samples per test-time iteration, drawn afresh (half inside, half outside)
    from the context each iteration (DeepSDF: 8,000); None: the whole context every iteration."""
    code_lr: float | None = None
    """3D DeepSDF: Adam learning rate of the latent codes (DeepSDF: 1e-3, twice the decoder's);
    None: ``lr``. Follows the same schedule."""
    code_init_std: float | None = 0.01
    """Auto-decoders (2D, and 3D DeepSDF): standard deviation of the initial codes (the MetaSDF
    reference's 2D auto-decoder: 1e-3); 3D, None: 1 / sqrt(latent), DeepSDF's."""
    code_bound: float | None = None
    """3D DeepSDF: largest norm of a code (DeepSDF: 1.0, nn.Embedding's max_norm); None: none."""
    code_reg: str = "sdfkit"
    """The auto-decoders' code regularizer. ``sdfkit``: 1e-4 x the squared norm of each code,
    averaged over the batch, in training and at test time. ``deepsdf`` (3D): DeepSDF's, in
    training 1e-4 x min(1, epoch / ``code_reg_warmup``) x the sum of the codes' norms / the
    batch's samples, at test time 1e-4 x the mean of the code's squared entries. ``reference``
    (2D): the MetaSDF reference's, 1 x the mean of the code's squared entries."""
    code_reg_warmup: int = 100
    """3D DeepSDF, ``code_reg`` deepsdf: epochs over which the regularizer ramps up (DeepSDF: 100)."""
    distance_term: str = "unsigned"
    """3D composite loss: the distance head's error, ``unsigned`` (| |d| - |sdf| |: the sign is
    the sign head's job; sdfkit's first default) or ``signed`` (|d - sdf|, the reference code's; the cpu
    preset's since it measured better there: docs/results-3d.md)."""
    clamp: float | None = 0.1
    """3D ``l1`` loss: clamp predictions and targets to +- this (DeepSDF: 0.1); None: plain l1
    (the reference's level-set model)."""
    mesh_resolution: int = 128
    """3D: marching-cubes cells per side when ``sdfkit eval`` is not given ``--resolution`` (the
    reference meshes at 256, reconstruction.py)."""
    balanced_targets: bool = False
    """3D: targets half inside and half outside, as the reference draws its SDF samples (the
    context is balanced either way)."""
    targets_include_context: bool = False
    """3D dense context: the outer loss scores the context samples too, as the reference does (its
    query is all 24,000 samples of a scene, the context a random half of them); otherwise only the
    ``target_points`` separate samples."""

    def __post_init__(self):
        """Every value checked where the config is made (a preset, a replayed config.json, a
        command line): a bad one is one line naming the key, what it was and what it may be."""
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
            if getattr(self, key) not in allowed:
                raise InputError(f"config: {key} is {getattr(self, key)!r}; choose one of {', '.join(allowed)}")
        if self.model not in MODELS_BY_KIND[self.data_kind]:
            raise InputError(
                f"config: model {self.model!r} does not train on {self.data_kind!r} stores; "
                f"choose one of {', '.join(MODELS_BY_KIND[self.data_kind])}"
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
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"config: {key} is {value!r}; it must be a whole number of at least 1")
        for key in ("micro_batch", "test_steps", "limit", "test_samples", "epochs"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"config: {key} is {value!r}; it must be null or a whole number of at least 1")
        for key in ("lr", "inner_lr", "test_lr"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise InputError(f"config: {key} is {value!r}; it must be a number above 0")
        for key in ("clip_grad", "clip_grad_value", "extra_step_lr", "code_lr", "code_init_std", "code_bound", "clamp"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
                raise InputError(f"config: {key} is {value!r}; it must be null or a number above 0")
        if not (isinstance(self.lr_step_factor, int | float) and 0 < self.lr_step_factor <= 1):
            raise InputError(f"config: lr_step_factor is {self.lr_step_factor!r}; it must be above 0 and at most 1")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise InputError(f"config: dropout is {self.dropout!r}; it must be at least 0 and below 1")
        for key in ("first_order", "clamp_lr", "test_lr_drop", "balanced_targets", "targets_include_context"):
            if not isinstance(getattr(self, key), bool):
                raise InputError(f"config: {key} is {getattr(self, key)!r}; it must be true or false")
        latent_in = self.latent_in if isinstance(self.latent_in, list | tuple) else [self.latent_in]
        if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in latent_in):
            raise InputError(f"config: latent_in is {self.latent_in!r}; it must be a list of layer numbers from 1")
        object.__setattr__(self, "latent_in", tuple(latent_in))  # a JSON list reads back as the tuple
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InputError(f"config: seed is {self.seed!r}; it must be a whole number")
        if not isinstance(self.split, str) or not self.split:
            raise InputError(f"config: split is {self.split!r}; give a split name such as train")


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
    "paper": TrainConfig(
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
    "cpu": TrainConfig(
        batch_size=16, hidden=128, context_points=512, lr=5e-4, inner_steps=3, steps=3000, test_iters=300, latent=128
    ),
}


PRESETS_3D = {
    # the paper's appendix and the reference code's planes/tables curriculum (3D/curriculums.py,
    # 3D/scripts/run_train.py), DeepSDF's specs.json for the DeepSDF baseline: docs/fidelity.md
    "paper": TrainConfig(
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
    "cpu": TrainConfig(
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
    config = replace(presets[name], model=model, context=context)
    for (when_kind, when_preset, when_model, when_context), changes in PRESET_CHANGES:
        if all(
            w is None or w == v
            for w, v in ((when_kind, kind), (when_preset, name), (when_model, model), (when_context, context))
        ):
            config = replace(config, **changes)
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
    return replace(config, **given)


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
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{path}: unknown config keys {', '.join(unknown)}")
    data.setdefault("inner_loss", "l1")  # written before the choice existed: trained with l1
    try:
        return TrainConfig(**data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
