"""Training MetaSDF and the baselines on a 2D (mnist) or 3D (shapenet) store.

A run folder holds everything needed to reproduce or continue a run: ``config.json`` (the
resolved :class:`TrainConfig`, replayable with ``--config``), ``checkpoint.pt`` (model, optimizer,
step and the batch generator's state; loaded with ``weights_only=True``), ``metrics.csv`` and,
when tensorboard is installed, TensorBoard logs in ``tb/``.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from metasdf.config import (
    PRESETS,
    PRESETS_3D,
    TrainConfig,
    config_from_json,
    main_process,
    resolve_config,
    run_store,
    store_kind,
)
from metasdf.data import Shapes2D, load_shapes
from metasdf.data3d import load_shapes_3d
from metasdf.models import MODELS
from metasdf.models3d import MODELS_3D
from sdfkit.errors import InputError, SdfkitError
from sdfkit.store.format import local_path

__all__ = [
    "TrainConfig",
    "PRESETS",
    "PRESETS_3D",
    "config_from_json",
    "load_tasks",
    "build_model",
    "keywords",
    "resolve_device",
    "train",
    "load_run",
    "learning_rate",
    "epoch_of",
    "steps_for_epochs",
    "make_optimizer",
    "steps_at_test_time",
    "resolve_config",
    "run_store",
    "store_kind",
    "main_process",
    "accumulate_gradients",
]


def load_tasks(store, config: TrainConfig):
    """The training shapes of a config's split, 2D or 3D as the config says."""
    kind = store_kind(store)
    if kind != config.data_kind:
        raise InputError(
            f"{store}: a {kind!r} store, but the run was configured for {config.data_kind!r} stores; "
            "start a new run (-o elsewhere) for this store"
        )
    if kind == "shapenet":
        return load_shapes_3d(store, config.split, limit=config.limit)
    return load_shapes(store, config.split, limit=config.limit, frame=config.tasks.frame)


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
    """The config's model, for ``n_shapes`` training shapes: each keyword its constructor takes
    that names a config setting gets the config's value (the constructors' keywords are the
    settings' names, docs/training.md), ``shapes`` the count of shapes."""
    models = MODELS_3D if config.data_kind == "shapenet" else MODELS
    if config.model not in models:
        raise InputError(f"unknown model {config.model!r}; choose {', '.join(models)}")
    cls = models[config.model]
    settings = config.settings()
    given = {name: settings[name] for name in keywords(cls) if name in settings}
    if "shapes" in keywords(cls):
        given["shapes"] = n_shapes
    return cls(**given)


def keywords(cls) -> set[str]:
    """The keyword parameters of a class's constructor, through those it passes on (``**kwargs``)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in parameters if p.kind is p.KEYWORD_ONLY}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameters; the latent codes in a group of their own at ``code_lr``
    when the config sets one (DeepSDF). Each group keeps its rate at step 0 as ``base_lr``."""
    codes = getattr(model, "codes", None)
    if config.codes.code_lr is None or codes is None:
        groups = [{"params": list(model.parameters()), "base_lr": config.optimizer.lr}]
    else:
        code_ids = {id(p) for p in codes.parameters()}
        rest = [p for p in model.parameters() if id(p) not in code_ids]
        groups = [
            {"params": rest, "base_lr": config.optimizer.lr},
            {"params": list(codes.parameters()), "base_lr": config.codes.code_lr},
        ]
    return torch.optim.Adam([{**g, "lr": g["base_lr"]} for g in groups])


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
    buffer = io.BytesIO()
    torch.save(state, buffer)  # in memory: torch's own file writer reports a full disk as a RuntimeError
    try:
        tmp.write_bytes(buffer.getbuffer())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
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


def shown_steps(steps: int, trained: int, most: int = 7) -> list[int]:
    """Inner-loop steps a figure shows: 0 (the initialization) to ``trained``, then evenly
    spaced test-time steps up to ``steps``, ``most`` columns at most."""
    if steps + 1 <= most:
        return list(range(steps + 1))
    head = list(range(min(trained, most - 2) + 1))
    tail = np.linspace(head[-1], steps, most - len(head) + 1).round().astype(int)[1:]
    return head + [int(s) for s in tail]


def steps_at_test_time(config: TrainConfig) -> int | None:
    """Gradient steps a model takes on a new shape's context: MetaSDF's inner-loop steps, the
    auto-decoders' latent iterations; None for the encoders (one forward pass)."""
    if config.model == "metasdf":
        return config.metasdf.inner_steps if config.metasdf.test_steps is None else config.metasdf.test_steps
    if config.model in ("autodecoder", "hypernet", "deepsdf"):
        return config.codes.test_iters
    return None


def load_run(
    run_dir: Path, *, device="cpu", test_steps: int | None = None, extra_step_lr: float | None = None
) -> tuple[TrainConfig, torch.nn.Module, dict]:
    """The config and trained model of a run folder (for evaluation); ``test_steps`` overrides
    the test-time steps (MetaSDF's inner-loop steps, the auto-decoders' latent iterations),
    ``extra_step_lr`` MetaSDF's rate for steps past the trained ones."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise InputError(f"{run_dir}: no such run folder; give the -o folder of an sdfkit train run")
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: is a file, not a run folder; give the -o folder of an sdfkit train run")
    config = config_from_json(run_dir / "config.json") if (run_dir / "config.json").exists() else None
    if config is None:
        raise InputError(f"{run_dir}: no config.json; not a run folder of sdfkit train (or one that never started)")
    if test_steps is not None:
        if test_steps < 1:
            raise InputError(f"--test-steps {test_steps}: give at least 1")
        if config.model == "metasdf":
            config = config.replace(test_steps=test_steps)
        elif steps_at_test_time(config) is not None:
            config = config.replace(test_iters=test_steps)
        else:
            raise InputError(
                f"{run_dir}: a {config.model} run encodes the context in one pass and takes no test-time steps; "
                "drop --test-steps"
            )
    if extra_step_lr is not None:
        if config.model != "metasdf":
            raise InputError(f"{run_dir}: a {config.model} run has no inner loop; drop --extra-step-lr")
        config = config.replace(extra_step_lr=extra_step_lr)
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
    config = _fitted(config, shapes, store)
    torch.manual_seed(config.seed)  # the same initial weights in every process
    model = build_model(config, len(shapes)).to(device)
    optimizer = make_optimizer(model, config)
    # each process draws its own tasks: rank r uses stream r of the seed
    generator = torch.Generator().manual_seed(config.seed + 1_000_003 * dist_info.rank)
    checkpoint = run_dir / "checkpoint.pt"
    step = _restore(run_dir, config, model, optimizer, generator, dist_info) if resume else 0
    if not resume and checkpoint.exists():
        raise InputError(f"{run_dir}: holds a run already; pass --resume to continue it, or choose another -o")
    trained = _parallel(model, device) if dist_info.world > 1 else model
    main = dist_info.main  # only the first process logs and saves
    metrics = writer = board = None
    elapsed = 0.0
    if main:
        metrics, writer, board, elapsed = _open_run(run_dir, store, config, step, resume)

    def save():
        states = _generator_states(generator, dist_info)
        if main:
            _save(checkpoint, model, optimizer, step, states, config)

    start, last, stopped, loss_value = time.perf_counter(), time.perf_counter(), "done", math.nan
    interrupted, previous = _catch_interrupt(dist_info)
    try:
        while step < config.optimizer.steps:
            if interrupted.is_set():
                stopped = "interrupted"
                break
            loss = _outer_step(trained, model, optimizer, shapes, config, generator, device, step)
            step += 1
            loss_value = float(loss.detach())
            now = time.perf_counter()
            rate = 1.0 / max(now - last, 1e-9)
            last = now
            if progress and main:
                progress(step, config.optimizer.steps, loss_value, rate)
            if main and (step % config.log_every == 0 or step == config.optimizer.steps):
                _log(metrics, writer, board, step, loss_value, elapsed + now - start, rate)
            if step % config.checkpoint_every == 0:
                save()
            if (
                time_limit is not None
                and _agree(now - start >= time_limit * 60, dist_info)
                and step < config.optimizer.steps
            ):
                stopped = "time-limit"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        save()
        if metrics is not None:
            metrics.close()
        if board is not None:
            board.close()
    return {"step": step, "steps": config.optimizer.steps, "loss": loss_value, "stopped": stopped}


def _log(metrics, writer, board, step: int, loss: float, seconds: float, rate: float) -> None:
    """One row of metrics.csv (flushed: a killed run keeps it), and the loss to TensorBoard."""
    writer.writerow([step, f"{loss:.6g}", f"{seconds:.2f}", f"{rate:.3f}"])
    metrics.flush()
    if board is not None:
        board.add_scalar("loss", loss, step)


def _generator_states(generator, dist_info) -> list:
    """Every process's task generator state (this process's alone in a run of one)."""
    if dist_info.world == 1:
        return [generator.get_state()]
    # only for runs of several processes (torchrun)
    import torch.distributed as dist

    states = [None] * dist_info.world
    dist.all_gather_object(states, generator.get_state())
    return states


def _parallel(model, device):
    """The model wrapped for a run of several processes (torchrun)."""
    # only for runs of several processes (torchrun)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _fitted(config: TrainConfig, shapes, store) -> TrainConfig:
    """The config with a length in epochs turned into steps of this split and batch; an input error
    for a dense context that leaves a grid no target cells."""
    if config.optimizer.epochs is not None:
        config = config.replace(steps=steps_for_epochs(config, len(shapes)))
    cells = getattr(shapes, "coords", None)
    if config.context == "dense" and cells is not None and config.tasks.context_points >= len(cells):
        raise InputError(
            f"{store}: {config.tasks.context_points} context points of a {len(cells)}-cell grid leave no target cells; "
            f"give a config with fewer context points, or a store of a finer --resolution"
        )
    return config


def _restore(run_dir: Path, config: TrainConfig, model, optimizer, generator, dist_info) -> int:
    """Load a run's checkpoint into the model, the optimizer and this process's task generator;
    returns its step. The run's config must be the one given, but for its length."""
    saved = config_from_json(run_dir / "config.json") if (run_dir / "config.json").exists() else None
    if saved is not None and saved.replace(steps=config.optimizer.steps) != config.replace(
        steps=config.optimizer.steps
    ):
        raise InputError(
            f"{run_dir}: was trained with another config; --resume needs the same one (see its config.json)"
        )
    state = load_checkpoint(run_dir / "checkpoint.pt", model_name=config.model)
    model.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    states = state.get("generator_states") or [state["generator_state"]]
    if len(states) != dist_info.world:
        raise InputError(f"{run_dir}: was trained with {len(states)} processes; resume it with as many")
    generator.set_state(states[dist_info.rank])
    return int(state["step"])


def _open_run(run_dir: Path, store, config: TrainConfig, step: int, resume: bool):
    """Write the run folder's config.json and data.json and open its logs: metrics.csv (on resume,
    its rows up to ``step``) and tensorboard where installed. Returns the metrics file, its csv
    writer, the tensorboard writer (or None) and the seconds already trained."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    local = local_path(store)
    (run_dir / "data.json").write_text(json.dumps({"store": str(local.resolve()) if local else str(store)}))
    metrics_path = run_dir / "metrics.csv"
    kept = _metrics_until(metrics_path, step) if resume else []
    elapsed = float(kept[-1][2]) if kept else 0.0  # seconds go on from where the checkpoint was
    metrics = metrics_path.open("w", newline="")
    writer = csv.writer(metrics)
    writer.writerows([["step", "loss", "seconds", "steps_per_second"], *kept])
    metrics.flush()
    return metrics, writer, _tensorboard(run_dir), elapsed


def _outer_step(trained, model, optimizer, shapes, config: TrainConfig, generator, device, step: int):
    """One outer step: a batch of tasks drawn with ``generator``, the rate of ``step``, gradients
    (accumulated over micro-batches), clipping, the update. Returns the loss."""
    index = torch.randint(0, len(shapes), (min(config.optimizer.batch_size, len(shapes)),), generator=generator)
    batch = shapes.batch(index, config, generator, device)
    # the epoch (fractional) each task is drawn in: DeepSDF's regularizer ramps up with it
    batch["epoch"] = torch.full((len(index),), epoch_of(config, step, len(shapes)), device=device)
    optimizer.zero_grad(set_to_none=True)
    factor = learning_rate(config, step, len(shapes)) / config.optimizer.lr
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", config.optimizer.lr) * factor
    loss = accumulate_gradients(trained, batch, config.optimizer.micro_batch)
    if config.optimizer.clip_grad:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.clip_grad)
    if config.optimizer.clip_grad_value:
        torch.nn.utils.clip_grad_value_(model.parameters(), config.optimizer.clip_grad_value)
    optimizer.step()
    return loss


def _metrics_until(path: Path, step: int) -> list[list[str]]:
    """The rows of a run's metrics.csv up to the checkpoint's ``step``: rows a killed run logged
    after its last checkpoint are done again by the resumed run, not listed twice."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [r for r in rows if len(r) == 4 and r[0].isdigit() and int(r[0]) <= step]


def steps_for_epochs(config: TrainConfig, shapes: int) -> int:
    """Outer steps of ``config.optimizer.epochs`` epochs over a split of ``shapes`` (the inverse of
    :func:`epoch_of`, rounded up)."""
    return max(
        1, math.ceil(config.optimizer.epochs * max(shapes, 1) / min(config.optimizer.batch_size, max(shapes, 1)))
    )


def epoch_of(config: TrainConfig, step: int, shapes: int) -> float:
    """Epochs done before step ``step``: an epoch is as many tasks as the split has ``shapes``."""
    return step * min(config.optimizer.batch_size, shapes) / max(shapes, 1)


def learning_rate(config: TrainConfig, step: int, shapes: int = 1) -> float:
    """The outer learning rate of step ``step`` (counted from 0) under the config's schedule;
    ``shapes`` (the split's size) sets the length of an epoch for the ``step`` schedule."""
    if config.optimizer.lr_schedule == "constant":
        return config.optimizer.lr
    if config.optimizer.lr_schedule == "cosine":
        return (
            config.optimizer.lr
            * 0.5
            * (1.0 + math.cos(math.pi * min(step, config.optimizer.steps) / config.optimizer.steps))
        )
    if config.optimizer.lr_schedule == "step":
        decays = int(epoch_of(config, step, shapes) // config.optimizer.lr_step_epochs)
        return config.optimizer.lr * config.optimizer.lr_step_factor**decays
    raise InputError(f"unknown lr_schedule {config.optimizer.lr_schedule!r}; choose constant, cosine or step")


def accumulate_gradients(model, batch, micro_batch: int | None) -> torch.Tensor:
    """Backward the batch's mean loss in slices of ``micro_batch`` tasks; returns the loss.

    ``model`` may be wrapped in DistributedDataParallel: gradients are then averaged over the
    processes once, after the last slice.
    """

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

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    # only for runs of several processes (torchrun)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    return _Dist(dist.get_rank(), dist.get_world_size()), device


def _catch_interrupt(dist_info: _Dist):
    """Ctrl-C (SIGINT) in a single-process run sets a flag that the loop reads between steps, so
    the step under way ends and the checkpoint is saved; an exception thrown into whatever ran (a
    read of the store on zarr's I/O thread, torch) could leave it waiting. A second Ctrl-C stops at
    once. Returns the flag and the handler to put back (None where none was installed: under
    torchrun every process gets the signal, and the exception path keeps them together)."""

    interrupted = threading.Event()
    if dist_info.world > 1 or threading.current_thread() is not threading.main_thread():
        return interrupted, None

    def on_interrupt(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    return interrupted, signal.signal(signal.SIGINT, on_interrupt)


def _agree(flag: bool, dist_info: _Dist) -> bool:
    """The same decision in every process (the first one's clock decides)."""
    if dist_info.world <= 1:
        return flag
    # only for runs of several processes (torchrun)
    import torch.distributed as dist

    # NCCL broadcasts only CUDA tensors, gloo CPU ones: the tensor goes where the backend wants it
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def _tensorboard(run_dir: Path):
    try:
        # optional: tensorboard logging where tensorboard is installed (0.9 s to import)
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tb"))
