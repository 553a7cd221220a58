"""The sections of a training config (:class:`metasdf.config.TrainConfig`): the optimizer, the
network, the tasks, MetaSDF's inner loop, the losses, the latent codes, the CNP and the evaluation.
Each holds its settings with their defaults and what they mean; :mod:`metasdf.config` checks the
values, holds the presets and resolves a run's config.

No torch here: the command line reads these without loading PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "OptimizerConfig",
    "NetworkConfig",
    "TaskConfig",
    "MetaSDFConfig",
    "LossConfig",
    "CodeConfig",
    "CNPConfig",
    "EvaluationConfig",
]


@dataclass(frozen=True)
class OptimizerConfig:
    """The run's length and the outer optimizer (every model)."""

    steps: int = 20_000
    """Outer steps in all (a resumed run continues up to this count)."""
    epochs: int | None = None
    """The run's length in epochs (an epoch: as many tasks as the training split has shapes):
    ``steps`` becomes ceil(epochs x shapes / batch) when the run starts (the paper: 50 for the 2D
    encoders and MetaSDF, 150 for the auto-decoders; the 3D reference 3,000, DeepSDF 2,001).
    None: ``steps`` as given."""
    batch_size: int = 32
    """Tasks (digits) per outer step."""
    micro_batch: int | None = 8
    """Tasks per forward/backward pass, gradients summed over the step: the same step, but
    small enough to stay in a CPU's caches (measured fastest at 4-8 on 2 cores). None: the
    whole batch at once (best on a GPU)."""
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


@dataclass(frozen=True)
class NetworkConfig:
    """The SDF network (every model; ``dropout``: 3D DeepSDF)."""

    hidden: int = 256
    """Width of the SDF network's hidden layers."""
    depth: int = 3
    """Hidden layers: 3 gives four linear layers, 2 -> 256 -> 256 -> 256 -> 1."""
    init: str = "sal"
    """sal (geometric initialization: the network starts as the SDF of a sphere), reference (the
    MetaSDF code's SAL: the last layer's weights constant and its bias 0) or kaiming."""
    dropout: float = 0.2
    """3D DeepSDF: dropout of its decoder."""


@dataclass(frozen=True)
class TaskConfig:
    """What a task shows a model: its context and its targets."""

    context_points: int = 1024
    """Context size: MetaSDF uses 1024 (dense) and 512 (level set)."""
    target_points: int = 4096
    """3D: SDF samples per task on which the outer loss is measured."""
    balanced_targets: bool = False
    """3D: targets half inside and half outside, as the reference draws its SDF samples (the
    context is balanced either way)."""
    targets_include_context: bool = False
    """3D dense context: the outer loss scores the context samples too, as the reference does (its
    query is all 24,000 samples of a scene, the context a random half of them); otherwise only the
    ``target_points`` separate samples."""
    frame: str = "sdfkit"
    """2D: what the models see. ``sdfkit``: the store's frame ([-1, 1]^2, cell centres, SDF with
    the half-cell correction, docs/mnist.md). ``reference``: the MetaSDF code's (pixel corners
    (row / R - 0.5, column / R - 0.5), the image spanning 1, SDF the plain difference of two
    distance transforms divided by R), computed from the store's grid. Evaluation scores both
    frames' metrics whichever a model trained in."""


@dataclass(frozen=True)
class MetaSDFConfig:
    """MetaSDF's inner loop (2D and 3D)."""

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


@dataclass(frozen=True)
class LossConfig:
    """The training losses: the 2D models' outer loss, 3D MetaSDF's and DeepSDF's."""

    outer_loss: str = "l1"
    """2D models: the training loss on the targets, ``l1`` or ``l2`` (the mean squared error, as
    the reference code trains)."""
    loss: str = "composite"
    """3D MetaSDF: ``composite`` (sign BCE + distance l1, learned Kendall weights) or ``l1``
    (DeepSDF's l1 clamped at 0.1). The 3D baselines use clamped l1."""
    sigma: str = "log"
    """3D MetaSDF's composite loss: its learned weights as ``log`` sigma (sdfkit) or ``direct``
    sigma from 1 (the reference: ``nn.Parameter(torch.ones(2))``, meta_modules.py:34-35);
    the same loss, another path for the optimizer."""
    distance_term: str = "unsigned"
    """3D composite loss: the distance head's error, ``unsigned`` (| |d| - |sdf| |: the sign is
    the sign head's job; sdfkit's first default) or ``signed`` (|d - sdf|, the reference code's; the cpu
    preset's since it measured better there: docs/results-3d.md)."""
    clamp: float | None = 0.1
    """3D ``l1`` loss: clamp predictions and targets to +- this (DeepSDF: 0.1); None: plain l1
    (the reference's level-set model)."""
    deepsdf_loss: str = "clamped-l1"
    """3D DeepSDF's training loss: ``clamped-l1`` (DeepSDF's own) or ``composite`` (a sign head
    and a distance head with learned weights, as the paper trains its Table 2 DeepSDF; its
    clamped l1 is the text's separate remark)."""


@dataclass(frozen=True)
class CodeConfig:
    """Latent codes: the 2D auto-decoders and hypernetwork, 3D DeepSDF (and the CNP's and PointNet's code size)."""

    latent: int = 256
    """Auto-decoders and CNP: size of the latent code."""
    latent_in: tuple[int, ...] = ()
    """2D concatenation auto-decoder: layers (from 0) that take [x, code] again beside their
    input (the paper's: the third layer, ``[2]``); none: the input only."""
    hyper_layers: int = 1
    """2D hypernetwork: 1, one linear head per weight tensor added to learned base weights
    (sdfkit); 3, the reference's MLP per tensor (hidden 256) that gives the whole tensor."""
    test_iters: int = 800
    """Auto-decoders: latent optimization steps at test time."""
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


@dataclass(frozen=True)
class CNPConfig:
    """The 2D conditional neural process's set encoder."""

    encoder_layers: int = 3
    """2D CNP: linear layers of the set encoder (the paper: 4, and a 9-layer variant)."""


@dataclass(frozen=True)
class EvaluationConfig:
    """How ``sdfkit eval`` scores a 3D run by default."""

    mesh_resolution: int = 128
    """3D: marching-cubes cells per side when ``sdfkit eval`` is not given ``--resolution`` (the
    reference meshes at 256, reconstruction.py)."""
