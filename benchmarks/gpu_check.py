"""What a lent GPU tells about the paper preset, in one short run: the 2D training speed that sizes a
full run, and 3D reconstruction time against DeepSDF's own test-time fit.

- **2D**: MetaSDF under ``--preset paper`` (2 -> 256 x 3 -> 1, five second-order inner steps with
  per-parameter rates, batch 32, 1,024 dense context points, the other 3,072 cells of a 64 x 64
  grid as targets): outer steps per second, and what the paper's 50 epochs of 59,000 training
  digits (60,000 less 1,000 held out) take at that rate.
- **3D**: one shape's reconstruction, MetaSDF (9 x 512, five inner steps on 12,000 context
  samples) against DeepSDF (8 x 512 auto-decoder, 800 Adam iterations on 8,000 fresh samples, as
  its reconstruct.py), each then evaluated on every node of a 256^3 grid (16.8 million points):
  seconds of each part and their ratio (the paper: about 0.4 s against 8 s).

The networks are untrained (their weights do not change the time) and the data random; the
models are sdfkit's own (``metasdf.train.build_model`` on the paper presets). ``--tiny`` shrinks
every size so the script runs on a CPU in seconds (the suite runs it so); on a GPU run it whole:

    python benchmarks/gpu_check.py --device cuda          # about 5 minutes on one GPU
    python benchmarks/gpu_check.py --tiny                 # the same code on a CPU, small sizes
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from metasdf.config import preset  # noqa: E402
from metasdf.train import build_model, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_2d(device: torch.device, *, tiny: bool, steps: int) -> dict:
    """MetaSDF's paper-preset outer steps per second at batch 32 (second order)."""
    config = preset("paper", model="metasdf", context="dense")
    cells, context = (16 * 16, 64) if tiny else (64 * 64, config.tasks.context_points)
    if tiny:
        config = config.replace(hidden=32)
    torch.manual_seed(0)
    model = build_model(config, 1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr)
    batch_size = config.optimizer.batch_size
    x = torch.rand(batch_size, cells, 2, device=device) - 0.5
    y = torch.rand(batch_size, cells, 1, device=device) * 0.2 - 0.1
    batch = {
        "context_x": x[:, :context],
        "context_y": y[:, :context],
        "target_x": x[:, context:],
        "target_y": y[:, context:],
    }
    for step in range(steps + 2):  # two steps to warm up
        if step == 2:
            _sync(device)
            start = time.perf_counter()
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    _sync(device)
    rate = steps / (time.perf_counter() - start)
    full = math.ceil(50 * 59_000 / batch_size)
    return {"steps_per_s": rate, "full_run_steps": full, "full_run_hours": full / rate / 3600}


def time_3d(device: torch.device, *, tiny: bool) -> dict:
    """Seconds to reconstruct one shape: specialization (MetaSDF) or code fit (DeepSDF), then
    every node of the grid."""
    resolution, context, iters = (24, 500, 20) if tiny else (256, 12_000, 800)
    out = {}
    for name in ("metasdf", "deepsdf"):
        config = preset("paper", model=name, context="dense", kind="shapenet")
        if tiny:
            config = config.replace(hidden=32, depth=4, test_samples=200)
        torch.manual_seed(0)
        model = build_model(config, 1).to(device).eval()
        context_x = torch.rand(1, context, 3, device=device) * 2 - 1
        context_y = context_x.norm(dim=2, keepdim=True) - 0.5  # a sphere's SDF
        _sync(device)
        start = time.perf_counter()
        field = (
            model.field(context_x, context_y) if name == "metasdf" else model.field(context_x, context_y, iters=iters)
        )
        _sync(device)
        fitted = time.perf_counter()
        axis = torch.linspace(-1, 1, resolution + 1, device=device)
        with torch.no_grad():
            for i in range(resolution + 1):  # one slab of the grid at a time: bounded memory
                slab = torch.stack(torch.meshgrid(axis[i : i + 1], axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
                field(slab)
        _sync(device)
        done = time.perf_counter()
        out[name] = {"fit_s": fitted - start, "grid_s": done - fitted, "total_s": done - start}
    out["ratio"] = out["deepsdf"]["total_s"] / out["metasdf"]["total_s"]
    out["resolution"], out["context"], out["deepsdf_iters"] = resolution, context, iters
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--tiny", action="store_true", help="small sizes: the same code in seconds on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="2D steps timed (default 50; 3 with --tiny)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    two = time_2d(device, tiny=args.tiny, steps=args.steps or (3 if args.tiny else 50))
    three = time_3d(device, tiny=args.tiny)
    print(f"gpu_check on {name}{' (--tiny: small sizes, not the paper sizes)' if args.tiny else ''}")
    print(f"{'what':<68}{'measured':>14}")
    print(f"{'2D MetaSDF, paper preset, batch 32, second order: steps/s':<68}{two['steps_per_s']:>14.2f}")
    print(f"{'  50 epochs of 59,000 digits: steps':<68}{two['full_run_steps']:>14,}")
    print(f"{'  50 epochs at that rate: hours':<68}{two['full_run_hours']:>14.2f}")
    grid = f"{three['resolution']}^3 grid"
    print(f"{'3D MetaSDF 9 x 512, 5 inner steps: specialize, s':<68}{three['metasdf']['fit_s']:>14.3f}")
    print(f"{'  then the ' + grid + ', s':<68}{three['metasdf']['grid_s']:>14.3f}")
    fit = f"3D DeepSDF 8 x 512, {three['deepsdf_iters']} iterations: fit the code, s"
    print(f"{fit:<68}{three['deepsdf']['fit_s']:>14.3f}")
    print(f"{'  then the ' + grid + ', s':<68}{three['deepsdf']['grid_s']:>14.3f}")
    print(f"{'DeepSDF / MetaSDF, whole reconstruction (paper: 8 s / 0.4 s = 20)':<68}{three['ratio']:>14.2f}")


if __name__ == "__main__":
    main()
