"""Training MetaSDF and the baselines on a 2D (mnist) store.

A run folder holds everything needed to reproduce or continue a run: ``config.json`` (the
resolved :class:`TrainConfig`, replayable with ``--config``), ``checkpoint.pt`` (model, optimizer,
step and the batch generator's state; loaded with ``weights_only=True``), ``metrics.csv`` and,
when tensorboard is installed, TensorBoard logs in ``tb/``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from metasdf.data import Shapes2D, load_shapes
from metasdf.models import MODELS
from sdfkit.errors import InputError, SdfkitError

__all__ = [
    "TrainConfig",
    "PRESETS",
    "PRESETS_3D",
    "load_tasks",
    "build_model",
    "resolve_device",
    "train",
    "load_run",
    "learning_rate",
    "steps_at_test_time",
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

MODELS_BY_KIND = {
    "mnist": ("metasdf", "autodecoder", "hypernet", "cnp"),
    "shapenet": ("metasdf", "deepsdf", "pointnet"),
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


def load_tasks(store, config: TrainConfig):
    """The training shapes of a config's split, 2D or 3D as the config says."""
    from sdfkit.store import open_store

    kind = open_store(store).attrs["sdfkit"].get("kind")
    if kind != config.data_kind:
        raise InputError(
            f"{store}: a {kind!r} store, but the run was configured for {config.data_kind!r} stores; "
            "start a new run (-o elsewhere) for this store"
        )
    if kind == "shapenet":
        from metasdf.data3d import load_shapes_3d

        return load_shapes_3d(store, config.split, limit=config.limit)
    return load_shapes(store, config.split, limit=config.limit)


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
    return TrainConfig(**data)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without CUDA is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SdfkitError(
            "--device cuda: this machine has no usable CUDA GPU (torch.cuda.is_available() is False); use --device cpu"
        )
    return torch.device(name)


def build_model(config: TrainConfig, n_shapes: int) -> torch.nn.Module:
    if config.data_kind == "shapenet":
        return _build_3d(config, n_shapes)
    if config.model not in MODELS:
        raise InputError(f"unknown model {config.model!r}; choose {', '.join(MODELS)}")
    if config.model == "metasdf":
        return MODELS["metasdf"](
            hidden=config.hidden,
            depth=config.depth,
            steps=config.inner_steps,
            lr_init=config.inner_lr,
            lr_type=config.lr_type,
            init=config.init,
            first_order=config.first_order,
            inner=config.inner_loss,
            test_steps=config.test_steps,
        )
    if config.model in ("autodecoder", "hypernet"):
        return MODELS[config.model](
            shapes=n_shapes,
            latent=config.latent,
            hidden=config.hidden,
            depth=config.depth,
            init=config.init,
            test_iters=config.test_iters,
        )
    return MODELS["cnp"](latent=config.latent, hidden=config.hidden, depth=config.depth, init=config.init)


def _build_3d(config: TrainConfig, n_shapes: int) -> torch.nn.Module:
    from metasdf.models3d import MODELS_3D

    if config.model not in MODELS_3D:
        raise InputError(f"unknown 3D model {config.model!r}; choose {', '.join(MODELS_3D)}")
    if config.model == "metasdf":
        return MODELS_3D["metasdf"](
            hidden=config.hidden,
            depth=config.depth,
            loss=config.loss,
            inner=config.inner_loss,
            steps=config.inner_steps,
            lr_init=config.inner_lr,
            lr_type=config.lr_type,
            init=config.init,
            first_order=config.first_order,
            test_steps=config.test_steps,
        )
    if config.model == "deepsdf":
        return MODELS_3D["deepsdf"](
            shapes=n_shapes,
            latent=config.latent,
            hidden=config.hidden,
            depth=config.depth,
            dropout=config.dropout,
            test_iters=config.test_iters,
            test_lr=config.test_lr,
        )
    return MODELS_3D["pointnet"](latent=config.latent, hidden=config.hidden, depth=config.depth)


def _save(path: Path, model, optimizer, step: int, generator_states: list, config: TrainConfig) -> None:
    state = {
        "model": config.model,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "step": step,
        "generator_state": generator_states[0],
        "generator_states": generator_states,  # one per process of a distributed run
        "config": asdict(config),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a kill during the save never leaves a torn checkpoint


def load_checkpoint(path: Path, *, model_name: str | None = None) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no checkpoint; train first (sdfkit train ... -o {path.parent})") from None
    except Exception as exc:
        raise InputError(
            f"{path}: not a sdfkit checkpoint ({type(exc).__name__}); retrain or pick another run"
        ) from None
    if not isinstance(state, dict) or "model_state" not in state:
        raise InputError(f"{path}: not a sdfkit checkpoint; retrain or pick another run")
    if model_name is not None and state.get("model") != model_name:
        raise InputError(f"{path}: a checkpoint of model {state.get('model')!r}, but the run asks for {model_name!r}")
    return state


def steps_at_test_time(config: TrainConfig) -> int | None:
    """Gradient steps a model takes on a new shape's context: MetaSDF's inner-loop steps, the
    auto-decoders' latent iterations; None for the encoders (one forward pass)."""
    if config.model == "metasdf":
        return config.inner_steps if config.test_steps is None else config.test_steps
    if config.model in ("autodecoder", "hypernet", "deepsdf"):
        return config.test_iters
    return None


def load_run(
    run_dir: Path, *, device="cpu", test_steps: int | None = None
) -> tuple[TrainConfig, torch.nn.Module, dict]:
    """The config and trained model of a run folder (for evaluation); ``test_steps`` overrides
    the test-time steps (MetaSDF's inner-loop steps, the auto-decoders' latent iterations)."""
    run_dir = Path(run_dir)
    config = config_from_json(run_dir / "config.json") if (run_dir / "config.json").exists() else None
    if config is None:
        raise InputError(f"{run_dir}: no config.json; not a run folder of sdfkit train")
    if test_steps is not None:
        if test_steps < 1:
            raise InputError(f"--test-steps {test_steps}: give at least 1")
        if config.model == "metasdf":
            config = replace(config, test_steps=test_steps)
        elif steps_at_test_time(config) is not None:
            config = replace(config, test_iters=test_steps)
        else:
            raise InputError(
                f"{run_dir}: a {config.model} run encodes the context in one pass and takes no test-time steps; "
                "drop --test-steps"
            )
    state = load_checkpoint(run_dir / "checkpoint.pt", model_name=config.model)
    n_shapes = state["model_state"]["codes.weight"].shape[0] if "codes.weight" in state["model_state"] else 0
    model = build_model(config, n_shapes)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        raise InputError(
            f"{run_dir / 'checkpoint.pt'}: does not fit the config's model ({str(exc).splitlines()[0]})"
        ) from None
    return config, model.to(device).eval(), state


def train(
    store,
    run_dir: Path,
    config: TrainConfig,
    *,
    device="cpu",
    resume: bool = False,
    time_limit: float | None = None,
    progress: Callable[[int, int, float, float], None] | None = None,
    shapes: Shapes2D | None = None,
) -> dict:
    """Train (or continue) a run; returns {"step", "loss", "stopped"} with stopped in
    ``done``, ``time-limit`` or ``interrupted``.

    progress : called as ``progress(step, total, loss, steps_per_second)`` after each step.
    """
    run_dir = Path(run_dir)
    learning_rate(config, 0)  # an unknown schedule fails here, not after the first checkpoint
    dist_info, device = _distributed(torch.device(device))
    shapes = shapes if shapes is not None else load_tasks(store, config)
    torch.manual_seed(config.seed)  # the same initial weights in every process
    model = build_model(config, len(shapes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    # each process draws its own tasks: rank r uses stream r of the seed
    generator = torch.Generator().manual_seed(config.seed + 1_000_003 * dist_info.rank)
    step = 0
    checkpoint = run_dir / "checkpoint.pt"
    if resume:
        saved = config_from_json(run_dir / "config.json") if (run_dir / "config.json").exists() else None
        if saved is not None and replace(saved, steps=config.steps) != replace(config, steps=config.steps):
            raise InputError(
                f"{run_dir}: was trained with another config; --resume needs the same one (see its config.json)"
            )
        state = load_checkpoint(checkpoint, model_name=config.model)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        states = state.get("generator_states") or [state["generator_state"]]
        if len(states) != dist_info.world:
            raise InputError(f"{run_dir}: was trained with {len(states)} processes; resume it with as many")
        generator.set_state(states[dist_info.rank])
        step = int(state["step"])
    elif checkpoint.exists():
        raise InputError(f"{run_dir}: holds a run already; pass --resume to continue it, or choose another -o")
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        trained = model
    main = dist_info.main  # only the first process logs and saves
    metrics = writer = board = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        metrics_path = run_dir / "metrics.csv"
        new_file = not metrics_path.exists() or not resume
        metrics = metrics_path.open("w" if new_file else "a", newline="")
        writer = csv.writer(metrics)
        if new_file:
            writer.writerow(["step", "loss", "seconds", "steps_per_second"])
        board = _tensorboard(run_dir)

    def save():
        states = [generator.get_state()]
        if dist_info.world > 1:
            import torch.distributed as dist

            states = [None] * dist_info.world
            dist.all_gather_object(states, generator.get_state())
        if main:
            _save(checkpoint, model, optimizer, step, states, config)

    start, last, stopped, loss_value = time.perf_counter(), time.perf_counter(), "done", math.nan
    try:
        while step < config.steps:
            index = torch.randint(0, len(shapes), (min(config.batch_size, len(shapes)),), generator=generator)
            batch = shapes.batch(index, config, generator, device)
            optimizer.zero_grad(set_to_none=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            loss = _accumulate(trained, batch, config.micro_batch)
            if config.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            step += 1
            loss_value = float(loss.detach())
            now = time.perf_counter()
            rate = 1.0 / max(now - last, 1e-9)
            last = now
            if progress and main:
                progress(step, config.steps, loss_value, rate)
            if main and (step % config.log_every == 0 or step == config.steps):
                writer.writerow([step, f"{loss_value:.6g}", f"{now - start:.2f}", f"{rate:.3f}"])
                metrics.flush()
                if board is not None:
                    board.add_scalar("loss", loss_value, step)
            if step % config.checkpoint_every == 0:
                save()
            if time_limit is not None and _agree(now - start >= time_limit * 60, dist_info) and step < config.steps:
                stopped = "time-limit"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        save()
        if metrics is not None:
            metrics.close()
        if board is not None:
            board.close()
    return {"step": step, "loss": loss_value, "stopped": stopped}


def learning_rate(config: TrainConfig, step: int) -> float:
    """The outer learning rate of step ``step`` (counted from 0) under the config's schedule."""
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))
    raise InputError(f"unknown lr_schedule {config.lr_schedule!r}; choose constant or cosine")


def _accumulate(model, batch, micro_batch: int | None) -> torch.Tensor:
    """Backward the batch's mean loss in slices of ``micro_batch`` tasks; returns the loss.

    ``model`` may be wrapped in DistributedDataParallel: gradients are then averaged over the
    processes once, after the last slice.
    """
    import contextlib

    tasks = batch["context_x"].shape[0]
    size = tasks if not micro_batch else micro_batch
    starts = list(range(0, tasks, size))
    total = torch.zeros(())
    for start in starts:
        part = {k: v[start : start + size] for k, v in batch.items()}
        quiet = model.no_sync() if hasattr(model, "no_sync") and start != starts[-1] else contextlib.nullcontext()
        with quiet:
            loss = model(part) * (part["context_x"].shape[0] / tasks)  # every task weighs the same
            loss.backward()
        total = total + loss.detach().cpu()
    return total


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    """Join the process group torchrun set up (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    return _Dist(dist.get_rank(), dist.get_world_size()), device


def _agree(flag: bool, dist_info: _Dist) -> bool:
    """The same decision in every process (the first one's clock decides)."""
    if dist_info.world <= 1:
        return flag
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0])
    dist.broadcast(value, src=0)
    return bool(value.item())


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))
