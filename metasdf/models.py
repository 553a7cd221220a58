"""MetaSDF and the baselines of the paper's 2D comparison.

Every model answers the same two questions, so that one trainer and one evaluator serve all:

- ``loss(batch) -> scalar``: the training loss of a batch of tasks;
- ``reconstruct(batch) -> (B, Nt, 1)``: the SDF at the target points of each task after seeing
  only its context (specialization, encoding or latent optimization happens here).

A batch is a dict: ``context_x`` (B, Nc, 2), ``context_y`` (B, Nc, 1), ``target_x`` (B, Nt, 2),
``target_y`` (B, Nt, 1), ``index`` (B,) rows of the training shapes (auto-decoders only).
Coordinates are sdfkit's frame ([-1, 1]^2), SDF values in the same units, negative inside.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from sdfkit.errors import InputError

__all__ = [
    "POINT_LOSSES",
    "init_layers",
    "layer_shapes",
    "batched_mlp",
    "MetaSDF",
    "AutoDecoder",
    "HyperAutoDecoder",
    "ConditionalNP",
    "MODELS",
]


POINT_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}
"""Error of a prediction at points, by name: ``l2`` is the mean squared error."""


def init_layers(shapes: list[tuple[int, int]], init: str, *, radius: float = 0.5, generator=None) -> list[torch.Tensor]:
    """Weights and biases [W0, b0, W1, b1, ...] of a ReLU MLP with layer shapes (out, in).

    init : ``sal`` (SAL's geometric initialization: the network starts close to the SDF of a
        sphere of ``radius``, which SDF training needs), ``reference`` (SAL as the MetaSDF
        reference code has it: the same hidden layers, the last layer's weights all
        sqrt(pi / fan_in) and its bias 0, so the network starts positive everywhere) or ``kaiming``.
    """
    params = []
    for i, (out, inp) in enumerate(shapes):
        last = i == len(shapes) - 1
        if init == "reference" and last:  # modules.sal_init_last_layer
            w = torch.full((out, inp), math.sqrt(math.pi) / math.sqrt(inp))
            b = torch.zeros(out)
        elif init in ("sal", "reference"):  # modules.sal_init for the hidden layers
            if last:
                w = math.sqrt(math.pi) / math.sqrt(inp) + 1e-4 * torch.randn(out, inp, generator=generator)
                b = torch.full((out,), -radius)
            else:
                w = torch.randn(out, inp, generator=generator) * math.sqrt(2.0) / math.sqrt(out)
                b = torch.zeros(out)
        elif init == "kaiming":
            w = torch.randn(out, inp, generator=generator) * math.sqrt(2.0 / inp)
            b = torch.zeros(out)
        else:
            raise InputError(f"unknown init {init!r}; choose sal, reference or kaiming")
        params += [w, b]
    return params


def batched_mlp(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """ReLU MLP with per-task weights: x (B, N, in), params [W (B, out, in), b (B, out), ...]."""
    layers = len(params) // 2
    for i in range(layers):
        w, b = params[2 * i], params[2 * i + 1]
        x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        if i < layers - 1:
            x = F.relu(x)
    return x


def layer_shapes(inp: int, hidden: int, depth: int, out: int = 1) -> list[tuple[int, int]]:
    dims = [inp] + [hidden] * depth + [out]
    return [(dims[i + 1], dims[i]) for i in range(len(dims) - 1)]


class MetaSDF(nn.Module):
    """Gradient-based meta-learning of SDFs (Sitzmann et al. 2020) with Meta-SGD learning rates.

    The inner loop specializes a copy of the weights per task with ``inner_steps`` gradient steps
    of the ``inner_loss`` (``l2``: mean squared error, or ``l1``) on the context; learning rates are
    learned per parameter and per step (``per-param``), per step (``per-step``) or one for all
    (``global``), clamped non-negative (``clamp_lr``; the reference code does not clamp). All
    tasks of a meta-batch run at once with per-task weights (batched matmuls): one
    ``autograd.grad`` of the summed task losses gives every task its own gradient. The outer loss
    is ``outer_loss`` (``l1``, or ``l2``: the reference code's mean squared error). At test time the
    inner loop may run longer than in training (``test_steps``): the extra steps reuse the last
    step's learned learning rates, or the whole loop takes the fixed rate ``extra_step_lr`` (the
    reference's 1e-2, :meth:`step_lr`).
    """

    def __init__(
        self,
        *,
        hidden=256,
        depth=3,
        inner_steps=5,
        inner_lr=0.1,
        lr_type="per-param",
        init="sal",
        first_order=False,
        dim=2,
        outputs=1,
        inner_loss="l2",
        outer_loss="l1",
        test_steps=None,
        clamp_lr=True,
        extra_step_lr=None,
    ):
        super().__init__()
        for name, value in (("inner", inner_loss), ("outer", outer_loss)):
            if value not in POINT_LOSSES:
                raise InputError(f"unknown {name} loss {value!r}; choose {' or '.join(POINT_LOSSES)}")
        steps, lr_init = inner_steps, inner_lr
        self.steps, self.first_order, self.lr_type, self.inner = steps, first_order, lr_type, inner_loss
        self.outer, self.test_steps, self.clamp_lr = outer_loss, test_steps, clamp_lr
        self.extra_step_lr = extra_step_lr
        self.weights = nn.ParameterList(init_layers(layer_shapes(dim, hidden, depth, outputs), init))
        if lr_type == "per-param":
            lrs = [torch.full((steps, *w.shape), lr_init) for w in self.weights]
        elif lr_type == "per-step":
            lrs = [torch.full((steps,) + (1,) * w.dim(), lr_init) for w in self.weights]
        elif lr_type == "global":
            lrs = [torch.full((1,) + (1,) * w.dim(), lr_init) for w in self.weights]
        else:
            raise InputError(f"unknown learning-rate type {lr_type!r}; choose per-param, per-step or global")
        self.lrs = nn.ParameterList(lrs)

    def specialize(self, context_x, context_y, *, steps=None, keep_graph=None, trace=False):
        """Per-task weights after the inner loop; with ``trace`` also the weights after each step.

        ``steps`` defaults to the trained ``steps``, and at test time (under ``no_grad``) to
        ``test_steps`` where set; steps past the trained ones repeat the last step's learned rates.
        """
        training = torch.is_grad_enabled()  # under no_grad (test time) nothing is kept
        if steps is None:
            steps = self.steps if training or self.test_steps is None else self.test_steps
        keep_graph = training and not self.first_order if keep_graph is None else keep_graph
        batch = context_x.shape[0]
        fast = [w.unsqueeze(0).expand(batch, *w.shape) for w in self.weights]
        history = [fast] if trace else None
        for step in range(steps):
            with torch.enable_grad():
                if not training:  # differentiate a detached copy of the task weights
                    fast = [w.detach().requires_grad_(True) for w in fast]
                loss = self.inner_loss(batched_mlp(context_x, fast), context_y).sum()
                grads = torch.autograd.grad(loss, fast, create_graph=keep_graph)
            fast = [w - self.step_lr(lr, step, steps) * g for w, lr, g in zip(fast, self.lrs, grads, strict=True)]
            if not training:
                fast = [w.detach() for w in fast]
            if trace:
                history.append(fast)
        return (fast, history) if trace else fast

    def step_lr(self, lr: torch.Tensor, step: int, steps: int) -> torch.Tensor | float:
        """The learning rate of inner step ``step`` (from 0) of ``steps`` for one weight tensor's
        rates ``lr``. A loop longer than the trained one takes ``extra_step_lr`` at every step
        where it is set, as the reference code does (meta_modules.py: ``self.lr[i][j] if
        num_meta_steps <= self.num_meta_steps else 1e-2``); else its extra steps repeat the last
        step's learned rates."""
        if steps > self.steps and self.extra_step_lr is not None:
            return self.extra_step_lr
        rate = lr[min(step, lr.shape[0] - 1)]
        return rate.clamp(min=0) if self.clamp_lr else rate

    def inner_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-task loss (B,) of the inner loop: l2 (or l1) to the context's values."""
        return POINT_LOSSES[self.inner](output, target, reduction="none").mean(dim=(1, 2))

    def outer_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The meta-training loss on the targets: l1 (or l2)."""
        return POINT_LOSSES[self.outer](output, target)

    def sdf(self, output: torch.Tensor) -> torch.Tensor:
        """The SDF (B, N, 1) from the network's output."""
        return output

    def forward(self, batch):  # the training loss: what DistributedDataParallel calls
        return self.loss(batch)

    def loss(self, batch):
        fast = self.specialize(batch["context_x"], batch["context_y"])
        return self.outer_loss(batched_mlp(batch["target_x"], fast), batch["target_y"])

    def reconstruct(self, batch):
        return self.sdf(batched_mlp(batch["target_x"], self.specialize(batch["context_x"], batch["context_y"])))


class _ConcatDecoder(nn.Module):
    """ReLU MLP on [x, latent] (DeepSDF's decoder); the layers numbered in ``latent_in`` (from 0,
    the first) take [x, latent] again beside their input (the paper's concatenation baseline:
    the input and the third layer, ``latent_in=(2,)``)."""

    def __init__(self, latent, hidden, depth, init, dim=2, latent_in=()):
        super().__init__()
        shapes = layer_shapes(dim + latent, hidden, depth)
        self.latent_in = tuple(sorted(set(latent_in)))
        if any(not 0 < k < len(shapes) for k in self.latent_in):
            raise InputError(f"latent_in {list(latent_in)}: layers 1 to {len(shapes) - 1} can take the code again")
        shapes = [(o, i + (dim + latent if k in self.latent_in else 0)) for k, (o, i) in enumerate(shapes)]
        self.params = nn.ParameterList(init_layers(shapes, init))

    def forward(self, x, z):
        code = torch.cat([x, z.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=2)
        params = [p.unsqueeze(0).expand(x.shape[0], *p.shape) for p in self.params]
        if not self.latent_in:
            return batched_mlp(code, params)
        h, layers = code, len(params) // 2
        for k in range(layers):
            if k in self.latent_in:
                h = torch.cat([h, code], dim=2)
            h = torch.baddbmm(params[2 * k + 1].unsqueeze(1), h, params[2 * k].transpose(1, 2))
            if k < layers - 1:
                h = F.relu(h)
        return h


CODE_REGS_2D = {"sdfkit": (1e-4, False), "reference": (1.0, True)}
"""The 2D auto-decoders' code regularizers: (weight, over the mean of the squared entries rather
than their sum)."""


class CodedDecoder(nn.Module):
    """What the 2D auto-decoders share: one latent code per training shape, optimized jointly
    with the decoder; at test time only the code is optimized on the context (``test_iters`` Adam
    steps at ``fit_lr``), with the training loss (``outer_loss``) and the same regularizer. A
    subclass gives :meth:`decode`.

    code_reg : ``sdfkit`` (1e-4 x the squared norm of each code) or ``reference`` (the MetaSDF
        reference's 1 x the mean of its squared entries)
    code_init_std : the codes' initial spread; None: 1 / sqrt(latent)
    """

    def __init__(
        self, *, shapes, latent, code_reg="sdfkit", test_iters=800, fit_lr=1e-2, outer_loss="l1", code_init_std=0.01
    ):
        super().__init__()
        if code_reg not in CODE_REGS_2D:
            raise InputError(
                f"code_reg {code_reg!r}: 2D auto-decoders take {' or '.join(CODE_REGS_2D)} "
                "(deepsdf is DeepSDF's 3D regularizer)"
            )
        self.codes = nn.Embedding(shapes, latent)
        nn.init.normal_(self.codes.weight, std=code_init_std if code_init_std is not None else latent**-0.5)
        self.reg, self.reg_mean = CODE_REGS_2D[code_reg]
        self.test_iters, self.test_lr, self.outer = test_iters, fit_lr, outer_loss

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        """The code regularizer per task (B,): ``reg`` times the squared norm of each code, or
        times the mean of its squared entries (``reg_mean``, the reference's mean(z^2))."""
        return self.reg * (z.pow(2).mean(dim=1) if self.reg_mean else z.pow(2).sum(dim=1))

    def decode(self, x, z):
        raise NotImplementedError

    def forward(self, batch):
        return self.loss(batch)

    def loss(self, batch):
        z = self.codes(batch["index"])
        pred = self.decode(batch["target_x"], z)
        return POINT_LOSSES[self.outer](pred, batch["target_y"]) + self.penalty(z).mean()

    def reconstruct(self, batch, *, iters=None):
        iters = self.test_iters if iters is None else iters
        z = torch.zeros(
            batch["context_x"].shape[0], self.codes.embedding_dim, device=batch["context_x"].device, requires_grad=True
        )
        optimizer = torch.optim.Adam([z], lr=self.test_lr)
        with torch.enable_grad():
            for _ in range(iters):
                optimizer.zero_grad()
                # the training loss and regularizer, on the context (per task, summed)
                error = POINT_LOSSES[self.outer](
                    self.decode(batch["context_x"], z), batch["context_y"], reduction="none"
                )
                (error.mean(dim=(1, 2)).sum() + self.penalty(z).sum()).backward()
                optimizer.step()
        with torch.no_grad():
            return self.decode(batch["target_x"], z.detach())


class AutoDecoder(CodedDecoder):
    """DeepSDF-style auto-decoder with concatenation: [x, code] into an MLP (the code joins the
    layers in ``latent_in`` again); the codes and their fit as :class:`CodedDecoder`'s."""

    def __init__(self, *, latent=256, hidden=256, depth=3, init="sal", latent_in=(), **codes):
        super().__init__(latent=latent, **codes)
        self.decoder = _ConcatDecoder(latent, hidden, depth, init, latent_in=latent_in)

    def decode(self, x, z):
        return self.decoder(x, z)


class HyperAutoDecoder(CodedDecoder):
    """Auto-decoder whose latent code is turned into all weights of the SDF network by a
    hypernetwork: one linear head per weight tensor added to learned base weights
    (``hyper_layers`` 1), or the reference's MLP per tensor that gives the whole tensor (3: the
    paper's)."""

    def __init__(self, *, latent=128, hidden=128, depth=3, init="sal", hyper_layers=1, hyper_hidden=256, **codes):
        super().__init__(latent=latent, **codes)
        shapes_ = layer_shapes(2, hidden, depth)
        if hyper_layers == 1:  # sdfkit: one linear head per tensor, added to learned base weights
            self.base = nn.ParameterList(init_layers(shapes_, init))
            self.heads = nn.ModuleList(nn.Linear(latent, p.numel()) for p in self.base)
            for head in self.heads:  # start at the base network: the code only adds a correction
                nn.init.normal_(head.weight, std=1e-3)
                nn.init.zeros_(head.bias)
        else:  # the reference's: an MLP of hyper_layers layers per tensor gives the whole tensor
            self.base = None
            sizes = [size for weight in shapes_ for size in (weight, (weight[0],))]  # weight, then bias
            self.heads = nn.ModuleList(_hyper_mlp(latent, hyper_hidden, hyper_layers, math.prod(t)) for t in sizes)
            self.shapes = sizes
        self.hyper_layers = hyper_layers

    def decode(self, x, z):
        if self.base is None:
            params = [head(z).view(z.shape[0], *shape) for shape, head in zip(self.shapes, self.heads, strict=True)]
        else:
            params = [
                p.unsqueeze(0) + head(z).view(z.shape[0], *p.shape)
                for p, head in zip(self.base, self.heads, strict=True)
            ]
        return batched_mlp(x, params)


def _hyper_mlp(latent: int, hidden: int, layers: int, out: int) -> nn.Sequential:
    """The reference's hypernetwork for one weight tensor (meta_modules.HyperNetwork, FCBlock):
    ``layers`` linear layers with ReLU between them, Kaiming-normal weights (fan in) and zero
    biases, the last layer's weights scaled by 0.1."""
    dims = [latent] + [hidden] * (layers - 1) + [out]
    modules: list[nn.Module] = []
    for k in range(layers):
        linear = nn.Linear(dims[k], dims[k + 1])
        nn.init.kaiming_normal_(linear.weight, a=0.0, nonlinearity="relu", mode="fan_in")
        nn.init.zeros_(linear.bias)
        modules.append(linear)
        if k < layers - 1:
            modules.append(nn.ReLU())
    with torch.no_grad():
        modules[-1].weight *= 0.1
    return nn.Sequential(*modules)


class ConditionalNP(nn.Module):
    """Conditional neural process: a set encoder (per-point MLP of ``encoder_layers`` linear
    layers, mean pooling; the paper: 4, and 9) turns the context into a code, a concatenation
    decoder maps [x, code] to the SDF. One forward pass at test time."""

    def __init__(self, *, latent=256, hidden=256, depth=3, init="sal", outer_loss="l1", encoder_layers=3):
        super().__init__()
        self.outer = outer_loss
        dims = [3] + [hidden] * (encoder_layers - 1) + [latent]
        modules: list[nn.Module] = []
        for k in range(encoder_layers):
            modules.append(nn.Linear(dims[k], dims[k + 1]))
            if k < encoder_layers - 1:
                modules.append(nn.ReLU())
        self.encoder = nn.Sequential(*modules)
        self.decoder = _ConcatDecoder(latent, hidden, depth, init)

    def encode(self, context_x, context_y):
        return self.encoder(torch.cat([context_x, context_y], dim=2)).mean(dim=1)

    def forward(self, batch):
        return self.loss(batch)

    def loss(self, batch):
        return POINT_LOSSES[self.outer](self.reconstruct(batch), batch["target_y"])

    def reconstruct(self, batch):
        return self.decoder(batch["target_x"], self.encode(batch["context_x"], batch["context_y"]))


MODELS = {"metasdf": MetaSDF, "autodecoder": AutoDecoder, "hypernet": HyperAutoDecoder, "cnp": ConditionalNP}
