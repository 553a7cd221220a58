"""Seconds per MetaSDF outer step, batched against a plain per-task loop, and test-time speed.

Paper preset: 32 tasks x 1024 context points (dense), 4096-cell grid (targets: the other 3072
cells), 2 -> 256 -> 256 -> 256 -> 1, 5 inner steps, second- and first-order. The per-task loop
is the straightforward implementation (one task at a time, F.linear, the same learned rates and
the model's own inner loss, l2 by default),
measured in the same run on the same data, and the first-order step's large matrix products
alone (a floor no implementation can beat on the same machine). "8+8+8+8" is the trainer's
default on CPU: the same step computed in micro-batches of 8 tasks with gradients summed
(cache-friendly). Test time: specializing one digit (5 steps, 1024 points), and the
auto-decoder's latent optimization (800 Adam iterations) on the same digit.

    python benchmarks/train_step.py
    python benchmarks/train_step.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metasdf.models import AutoDecoder, MetaSDF  # noqa: E402
from metasdf.train import accumulate_gradients  # noqa: E402


def loop_loss(model: MetaSDF, batch) -> torch.Tensor:
    """The per-task reference: one task at a time."""
    total = 0.0
    tasks = batch["context_x"].shape[0]
    for t in range(tasks):
        fast = list(model.weights)
        for step in range(model.steps):
            # the model's own inner loss (l2 by default), so both sides run the same algorithm
            loss = model.inner_loss(_mlp(batch["context_x"][t], fast)[None], batch["context_y"][t][None]).sum()
            grads = torch.autograd.grad(loss, fast, create_graph=not model.first_order)
            fast = [w - lr[step].clamp(min=0) * g for w, lr, g in zip(fast, model.lrs, grads, strict=True)]
        total = total + F.l1_loss(_mlp(batch["target_x"][t], fast), batch["target_y"][t]) / tasks
    return total


def _mlp(x, params):
    for i in range(0, len(params), 2):
        x = F.linear(x, params[i], params[i + 1])
        x = F.relu(x) if i < len(params) - 2 else x
    return x


def gemm_floor(batch, hidden: int, steps: int, micro: int, repeats: int) -> float:
    """Seconds of the first-order step's large matrix products alone, nothing else: per pass over
    N points, 2 forward products (B, N, H) x (H, H) and 4 backward ones (two weight gradients,
    two deltas), for ``steps`` inner passes on the context and one outer pass on the targets.
    No implementation of the step can take less than this on the same machine."""
    device = batch["context_x"].device
    weights = torch.randn(micro, hidden, hidden, device=device)
    sizes = [batch["context_x"].shape[1]] * steps + [batch["target_x"].shape[1]]
    acts = {n: torch.randn(micro, n, hidden, device=device) for n in set(sizes)}
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(0, batch["context_x"].shape[0], micro):
            for n in sizes:
                h = acts[n]
                for _ in range(2):
                    torch.bmm(h, weights)  # forward
                    torch.bmm(h.transpose(1, 2), h)  # weight gradient
                    torch.bmm(h, weights)  # delta
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def time_step(model, batch, loss_fn, repeats):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(repeats + 1):  # the first one warms up
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(model, batch)
        if loss.requires_grad:  # micro-batching has already run its backward passes
            loss.backward()
        optimizer.step()
        if batch["context_x"].is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    tasks, context, cells = 32, 1024, 4096
    batch = {
        "context_x": torch.rand(tasks, context, 2) * 2 - 1,
        "context_y": torch.rand(tasks, context, 1) - 0.5,
        "target_x": torch.rand(tasks, cells - context, 2) * 2 - 1,
        "target_y": torch.rand(tasks, cells - context, 1) - 0.5,
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    print(f"MetaSDF outer step, 32 tasks x 1024 points, 5 inner steps, {torch.get_num_threads()} threads, {device}")
    print(f"{'order':<8}{'per-task loop s':>16}{'batched, 32 s':>15}{'batched, 8+8+8+8 s':>20}{'best speed-up':>15}")
    for first_order in (False, True):
        model = MetaSDF(inner_steps=5, first_order=first_order).to(device)
        loop = time_step(model, batch, loop_loss, max(1, args.repeats - 2))
        whole = time_step(model, batch, lambda m, b: m.loss(b), args.repeats)
        micro = time_step(model, batch, lambda m, b: accumulate_gradients(m, b, 8), args.repeats)
        print(
            f"{'first' if first_order else 'second':<8}{loop:>16.2f}{whole:>15.2f}{micro:>20.2f}{loop / min(whole, micro):>15.2f}"
        )
    floor = gemm_floor(batch, 256, 5, 8, args.repeats)
    print(f"first-order step's large matrix products alone (8+8+8+8, nothing else): {floor:.2f} s")

    one = {k: v[:1] for k, v in batch.items()}
    model = MetaSDF(inner_steps=5).to(device).eval()
    with torch.no_grad():
        model.reconstruct(one)
        start = time.perf_counter()
        for _ in range(10):
            model.reconstruct(one)
        meta_s = (time.perf_counter() - start) / 10
    decoder = AutoDecoder(shapes=1, test_iters=800).to(device).eval()
    start = time.perf_counter()
    decoder.reconstruct(one)
    auto_s = time.perf_counter() - start
    print("\ntest time, one digit, 1024 context points")
    print(f"{'method':<44}{'seconds':>10}{'ratio':>8}")
    print(f"{'auto-decoder latent optimization (800 it.)':<44}{auto_s:>10.3f}{1.0:>8.1f}")
    print(f"{'MetaSDF specialization (5 steps)':<44}{meta_s:>10.4f}{auto_s / meta_s:>8.1f}")
    print(f"target <= 0.040 s for MetaSDF: {'met' if meta_s <= 0.04 else 'NOT met'}")


if __name__ == "__main__":
    main()
