"""MetaSDF in 3D and the baselines of the paper's ShapeNet comparison.

Same interface as the 2D models (:mod:`metasdf.models`): ``loss(batch)`` and
``reconstruct(batch) -> (B, Nt, 1)``, with 3D coordinates in sdfkit's normalized frame (the unit
ball) and SDF values in the same units, negative inside.

- :class:`MetaSDF3D`: ReLU MLP (9 x 512 for dense context, 8 x 512 for level sets in the reference code)
  with two heads, a sign logit and a distance; the SDF is ``sign(logit) * |distance|``. Loss:
  :func:`composite_loss` (BCE on the sign plus l1 on the distance, weighted by learned
  uncertainties, Kendall et al. 2018; one pair of weights for the inner loop and one for the
  outer loop, both learned in the outer loop) or DeepSDF's clamped l1.
- :class:`DeepSDF`: DeepSDF's auto-decoder (weight-normalized 8 x 512 MLP on [latent, x] with the
  latent re-injected at the fourth layer, tanh output, clamped l1); at test time only the latent
  code is optimized on the context.
- :class:`PointNetSDF`: Occupancy Networks' ResNet PointNet encoder of the context points into a
  latent code, and a concatenation decoder: one forward pass at test time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from metasdf.models import MetaSDF, batched_mlp
from sdfkit.errors import InputError

__all__ = ["composite_loss", "clamped_l1", "MetaSDF3D", "DeepSDF", "PointNetSDF", "MODELS_3D"]


def clamped_l1(
    prediction: torch.Tensor, target: torch.Tensor, clamp: float | None = 0.1, *, power: int = 1
) -> torch.Tensor:
    """DeepSDF's loss, per task (B,): mean |clamp(prediction) - clamp(target)|, clamp to +-0.1
    (``power=2``: its square; ``clamp=None``: plain l1)."""
    if clamp is not None:
        prediction, target = prediction.clamp(-clamp, clamp), target.clamp(-clamp, clamp)
    return (prediction - target).abs().pow(power).mean(dim=(1, 2))


def composite_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    log_sigma: torch.Tensor,
    *,
    signed: bool = True,
    distance: str = "l1",
    term: str = "unsigned",
):
    """Kendall-weighted loss per task (B,): ``BCE / (2 s0^2) + L1 / (2 s1^2) + log(s0 s1)``.

    output : (B, N, 2) sign logit (positive outside) and distance; target : (B, N, 1) SDF
    log_sigma : (2,) log s0 (sign) and log s1 (distance)
    signed : False for targets without a sign (zero-level-set points): the BCE term and its
        weight are left out
    distance : ``l1`` or ``l2`` (its square) for the distance term
    term : ``unsigned`` (| |d| - |sdf| |: the distance head answers how far, the sign head which
        side) or ``signed`` (|d - sdf|, the reference code's)
    """
    logit, dist = output[..., 0], output[..., 1]
    sdf = target[..., 0]
    error = (dist.abs() - sdf.abs()).abs() if term == "unsigned" else (dist - sdf).abs()
    mean = (error if distance == "l1" else error.pow(2)).mean(dim=1)
    total = mean * torch.exp(-2.0 * log_sigma[1]) / 2.0 + log_sigma[1]
    if signed:
        bce = F.binary_cross_entropy_with_logits(logit, (sdf > 0).to(logit.dtype), reduction="none").mean(dim=1)
        total = total + bce * torch.exp(-2.0 * log_sigma[0]) / 2.0 + log_sigma[0]
    return total


SIGMAS = ("log", "direct")
"""How the composite loss's weights are learned: log sigma (sdfkit) or sigma (the reference)."""


class MetaSDF3D(MetaSDF):
    """MetaSDF for shapes: two output heads and the composite loss (or clamped l1).

    loss : ``composite`` (two heads) or ``l1`` (one output, DeepSDF's clamped l1 in both loops)
    inner_loss : the inner loop's distance error, ``l1`` (the paper's) or ``l2`` (squared; with
        ``loss="l1"``: the clamped error squared). The outer loop always uses l1.
    distance_term : the composite loss's distance error, ``unsigned`` or ``signed``
    """

    def __init__(
        self,
        *,
        hidden=512,
        depth=8,
        loss="composite",
        clamp=0.1,
        inner_loss="l1",
        distance_term="unsigned",
        sigma="log",
        **kwargs,
    ):
        if loss not in ("composite", "l1"):
            raise InputError(f"unknown loss {loss!r}; choose composite or l1")
        if distance_term not in ("unsigned", "signed"):
            raise InputError(f"unknown distance term {distance_term!r}; choose unsigned or signed")
        if sigma not in SIGMAS:
            raise InputError(f"unknown sigma parameter {sigma!r}; choose {' or '.join(SIGMAS)}")
        super().__init__(
            hidden=hidden, depth=depth, dim=3, outputs=2 if loss == "composite" else 1, inner_loss=inner_loss, **kwargs
        )
        self.kind, self.clamp, self.distance, self.sigma = loss, clamp, distance_term, sigma
        # sigma of (sign, distance), for the inner and the outer loop, learned in the outer loop: as
        # log sigma (sdfkit) or sigma itself from 1 (the reference's nn.Parameter(torch.ones(2)))
        if sigma == "log":
            self.inner_log_sigma = nn.Parameter(torch.zeros(2))
            self.outer_log_sigma = nn.Parameter(torch.zeros(2))
        else:
            self.inner_sigma = nn.Parameter(torch.ones(2))
            self.outer_sigma = nn.Parameter(torch.ones(2))

    def log_sigma(self, loop: str) -> torch.Tensor:
        """log sigma (2,) of the ``inner`` or ``outer`` loop's composite loss."""
        if self.sigma == "log":
            return getattr(self, f"{loop}_log_sigma")
        return torch.log(getattr(self, f"{loop}_sigma"))

    def inner_loss(self, output, target):
        if self.kind == "l1":
            return clamped_l1(output, target, self.clamp, power=2 if self.inner == "l2" else 1)
        # level-set context: every target is 0 and has no sign
        signed = bool((target != 0).any())
        return composite_loss(
            output, target, self.log_sigma("inner"), signed=signed, distance=self.inner, term=self.distance
        )

    def outer_loss(self, output, target):
        if self.kind == "l1":
            return clamped_l1(output, target, self.clamp).mean()
        return composite_loss(output, target, self.log_sigma("outer"), term=self.distance).mean()

    def sdf(self, output):
        if self.kind == "l1":
            return output
        return torch.where(output[..., :1] >= 0, 1.0, -1.0) * output[..., 1:].abs()

    def field(self, context_x, context_y):
        """Specialize to one task's context (1, Nc, 3), (1, Nc, 1); returns x (N, 3) -> SDF (N,),
        or with the composite loss x -> (N, 2): the SDF and the sign logit. The SDF's zero set is
        where the logit changes sign, so meshing interpolates the smooth logit to place the
        surface inside a cell; |distance| next to a sign flip need not be near 0, and
        interpolating it leaves terraces one cell high (:func:`~metasdf.reconstruct.extract_mesh`)."""

        fast = self.specialize(context_x, context_y)
        if self.kind == "l1":
            return lambda x: batched_mlp(x.unsqueeze(0), fast)[0, :, 0]

        def sdf_and_logit(x):
            output = batched_mlp(x.unsqueeze(0), fast)[0]
            return torch.stack([self.sdf(output)[:, 0], output[:, 0]], dim=1)

        return sdf_and_logit


class _WeightNormMLP(nn.Module):
    """DeepSDF's decoder: weight-normalized ReLU layers on [latent, x], the input concatenated
    again before layer ``skip``, dropout, tanh output (with two outputs: a sign logit, then the
    tanh distance)."""

    def __init__(self, inputs: int, hidden: int, depth: int, *, skip: int = 4, dropout: float = 0.2, outputs: int = 1):
        super().__init__()
        self.skip = skip if 0 < skip < depth else None
        layers = []
        width = inputs
        for i in range(depth):
            out = hidden - inputs if self.skip is not None and i + 1 == self.skip else hidden
            layers.append(nn.utils.parametrizations.weight_norm(nn.Linear(width, out)))
            width = out + inputs if self.skip is not None and i + 1 == self.skip else out
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(width, outputs)
        self.dropout = dropout

    def forward(self, h):
        x = h
        for i, layer in enumerate(self.layers):
            if self.skip is not None and i == self.skip:
                h = torch.cat([h, x], dim=-1)
            h = F.dropout(F.relu(layer(h)), p=self.dropout, training=self.training)
        out = self.out(h)
        if out.shape[-1] == 1:
            return torch.tanh(out)
        return torch.cat([out[..., :1], torch.tanh(out[..., 1:])], dim=-1)  # a sign logit, then the distance


class DeepSDF(nn.Module):
    """DeepSDF's auto-decoder: a latent code per training shape, trained with the decoder; at test
    time the code alone is fitted to the context with Adam (DeepSDF: 800 iterations, lr 5e-3,
    divided by 10 at 400, 8,000 fresh samples per iteration), with the training loss.

    deepsdf_loss : ``clamped-l1`` (DeepSDF's) or ``composite`` (two outputs, a sign logit and a
        distance, Kendall-weighted as :func:`composite_loss` with the ``distance_term``: the paper's
        Table 2)
    clamp : the clamped l1's bound (None: DeepSDF's 0.1)

    code_reg : ``sdfkit`` (``reg`` x squared norm, batch mean; the same at test time) or
        ``deepsdf`` (train_deep_sdf.py: ``reg`` x min(1, epoch / ``code_reg_warmup``) x the sum of
        the codes' norms / the batch's samples; reconstruct.py: ``reg`` x mean of the squared entries)
    code_init_std : the codes' initial spread; None: 1 / sqrt(latent) (DeepSDF's CodeInitStdDev 1)
    code_bound : nn.Embedding's max_norm (DeepSDF's CodeBound)
    test_samples : per test-time iteration, draw this many context samples afresh, half of each
        sign (None: the whole context every iteration)
    """

    def __init__(
        self,
        *,
        shapes: int,
        latent=256,
        hidden=512,
        depth=8,
        dropout=0.2,
        reg=1e-4,
        clamp=0.1,
        test_iters=800,
        test_lr=5e-3,
        test_lr_drop=False,
        test_samples=None,
        code_init_std=0.01,
        code_bound=None,
        code_reg="sdfkit",
        code_reg_warmup=100,
        deepsdf_loss="clamped-l1",
        distance_term="signed",
    ):
        loss, distance = deepsdf_loss, distance_term
        clamp = 0.1 if clamp is None else clamp
        super().__init__()
        if code_reg not in ("sdfkit", "deepsdf"):
            raise InputError(f"unknown code regularizer {code_reg!r}; choose sdfkit or deepsdf")
        if loss not in ("clamped-l1", "composite"):
            raise InputError(f"unknown DeepSDF loss {loss!r}; choose clamped-l1 or composite")
        self.codes = nn.Embedding(shapes, latent, max_norm=code_bound)
        nn.init.normal_(self.codes.weight, std=code_init_std if code_init_std is not None else latent**-0.5)
        self.kind, self.distance = loss, distance
        self.decoder = _WeightNormMLP(
            latent + 3, hidden, depth, dropout=dropout, outputs=2 if loss == "composite" else 1
        )
        if loss == "composite":  # log sigma of (sign, distance), learned with the decoder
            self.log_sigma = nn.Parameter(torch.zeros(2))
        self.reg, self.clamp, self.test_iters, self.test_lr = reg, clamp, test_iters, test_lr
        self.test_lr_drop, self.test_samples = test_lr_drop, test_samples
        self.code_reg, self.code_reg_warmup = code_reg, code_reg_warmup

    def decode(self, x, z):
        return self.decoder(torch.cat([z.unsqueeze(1).expand(-1, x.shape[1], -1), x], dim=2))

    def forward(self, batch):
        return self.loss(batch)

    def fit_error(self, output, target) -> torch.Tensor:
        """Per task (B,): DeepSDF's clamped l1, or the composite loss (Table 2's DeepSDF)."""
        if self.kind == "composite":
            return composite_loss(output, target, self.log_sigma, term=self.distance)
        return clamped_l1(output, target, self.clamp)

    def sdf(self, output):
        if self.kind == "composite":
            return torch.where(output[..., :1] >= 0, 1.0, -1.0) * output[..., 1:].abs()
        return output

    def loss(self, batch):
        z = self.codes(batch["index"])
        fit = self.fit_error(self.decode(batch["target_x"], z), batch["target_y"]).mean()
        if self.code_reg == "deepsdf":  # per sample of the batch, ramped up over the first epochs
            epoch = batch["epoch"][0] if "epoch" in batch else self.code_reg_warmup
            warm = min(1.0, float(epoch) / self.code_reg_warmup)
            return fit + self.reg * warm * z.norm(dim=1).sum() / batch["target_x"].shape[:2].numel()
        return fit + self.reg * z.pow(2).sum(dim=1).mean()

    def fit_codes(self, context_x, context_y, *, iters=None) -> torch.Tensor:
        """Latent codes (B, latent) fitted to each task's context (the decoder stays fixed)."""
        iters = self.test_iters if iters is None else iters
        generator = torch.Generator(device="cpu").manual_seed(0)
        z = (0.01 * torch.randn(context_x.shape[0], self.codes.embedding_dim, generator=generator)).to(context_x.device)
        z.requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=self.test_lr)
        was_training = self.training
        self.eval()
        with torch.enable_grad():
            for i in range(iters):
                if self.test_lr_drop:  # reconstruct.py: lr / 10 from iteration num_iterations // 2
                    optimizer.param_groups[0]["lr"] = self.test_lr * (0.1 if i >= iters // 2 else 1.0)
                x, y = context_x, context_y
                if self.test_samples is not None:
                    x, y = _balanced_draw(context_x, context_y, self.test_samples, generator)
                optimizer.zero_grad()
                fit = self.fit_error(self.decode(x, z), y).sum()
                if self.code_reg == "deepsdf":
                    penalty = self.reg * z.pow(2).mean(dim=1).sum()
                else:
                    penalty = self.reg * z.pow(2).sum()
                (fit + penalty).backward()
                optimizer.step()
        self.train(was_training)
        return z.detach()

    def reconstruct(self, batch, *, iters=None):
        z = self.fit_codes(batch["context_x"], batch["context_y"], iters=iters)
        with torch.no_grad():
            return self.sdf(self.decode(batch["target_x"], z))

    def field(self, context_x, context_y, *, iters=None):
        """Fit one task's code; returns x (N, 3) -> SDF (N,), or with the composite loss x ->
        (N, 2): the SDF and the sign logit (as :meth:`MetaSDF3D.field`)."""
        z = self.fit_codes(context_x, context_y, iters=iters)
        if self.kind != "composite":
            return lambda x: self.decode(x.unsqueeze(0), z)[0, :, 0]

        def sdf_and_logit(x):
            output = self.decode(x.unsqueeze(0), z)[0]
            return torch.stack([self.sdf(output)[:, 0], output[:, 0]], dim=1)

        return sdf_and_logit


def _balanced_draw(x: torch.Tensor, y: torch.Tensor, count: int, generator: torch.Generator):
    """``count`` samples per task of (B, N, 3) / (B, N, 1), half with y > 0 and half with y <= 0,
    drawn with replacement (DeepSDF's unpack_sdf_samples_from_ram); a task with one sign only
    draws all from it."""
    picks = []
    for values in y[..., 0]:
        outside = torch.nonzero(values > 0).squeeze(1)
        inside = torch.nonzero(values <= 0).squeeze(1)
        groups = [g for g in (outside, inside) if len(g)]
        sizes = [count // 2, count - count // 2] if len(groups) == 2 else [count]
        chosen = [
            g[(torch.rand(n, generator=generator) * len(g)).long().to(g.device)]
            for g, n in zip(groups, sizes, strict=True)
        ]
        picks.append(torch.cat(chosen))
    index = torch.stack(picks)
    return torch.gather(x, 1, index.unsqueeze(2).expand(-1, -1, x.shape[2])), torch.gather(y, 1, index.unsqueeze(2))


class _ResnetBlock(nn.Module):
    def __init__(self, inputs, hidden, outputs):
        super().__init__()
        self.fc0, self.fc1 = nn.Linear(inputs, hidden), nn.Linear(hidden, outputs)
        self.shortcut = nn.Linear(inputs, outputs, bias=False) if inputs != outputs else None
        nn.init.zeros_(self.fc1.weight)

    def forward(self, x):
        dx = self.fc1(F.relu(self.fc0(F.relu(x))))
        return (x if self.shortcut is None else self.shortcut(x)) + dx


class ResnetPointNet(nn.Module):
    """Occupancy Networks' ResNet PointNet: five residual blocks with max-pooled features
    concatenated back to every point, then a max pool and a linear map to the code."""

    def __init__(self, latent=256, hidden=128):
        super().__init__()
        self.fc_pos = nn.Linear(3, 2 * hidden)
        self.blocks = nn.ModuleList(_ResnetBlock(2 * hidden, hidden, hidden) for _ in range(5))
        self.fc_c = nn.Linear(hidden, latent)

    def forward(self, points):
        h = self.blocks[0](self.fc_pos(points))
        for block in self.blocks[1:]:
            pooled = h.max(dim=1, keepdim=True).values.expand_as(h)
            h = block(torch.cat([h, pooled], dim=2))
        return self.fc_c(F.relu(h.max(dim=1).values))


class PointNetSDF(nn.Module):
    """PointNet encoder + concatenation decoder (the paper's level-set baseline): the context
    points are encoded into a code, and an MLP maps [x, code] to the SDF (clamped l1)."""

    def __init__(self, *, latent=256, hidden=512, depth=8, encoder_hidden=128, clamp=0.1):
        super().__init__()
        clamp = 0.1 if not clamp else clamp  # None: DeepSDF's 0.1
        self.encoder = ResnetPointNet(latent, encoder_hidden)
        layers, width = [], latent + 3
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.decoder = nn.Sequential(*layers, nn.Linear(width, 1))
        self.clamp = clamp

    def forward(self, batch):
        return self.loss(batch)

    def loss(self, batch):
        return clamped_l1(self.reconstruct(batch), batch["target_y"], self.clamp).mean()

    def reconstruct(self, batch):
        return self._decode(batch["target_x"], self.encoder(batch["context_x"]))

    def _decode(self, x, code):
        return self.decoder(torch.cat([x, code.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=2))

    def field(self, context_x, context_y):
        """Encode one task's context points; returns x (N, 3) -> SDF (N,)."""
        code = self.encoder(context_x)
        return lambda x: self._decode(x.unsqueeze(0), code)[0, :, 0]


MODELS_3D = {"metasdf": MetaSDF3D, "deepsdf": DeepSDF, "pointnet": PointNetSDF}
