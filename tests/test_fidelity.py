"""Fidelity to the reference code (vsitzmann/metasdf, facebookresearch/DeepSDF): its frame and
ground truth, its metric, its initialization, its learning-rate rules and regularizers, and the
paper preset training for every model and context.

References: the reference's SignedDistanceTransform and get_mgrid recomputed here with scipy and
numpy as its code has them; metrics, losses and learning rates computed by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from test_cli import assert_user_error, sdfkit

from metasdf.config import PRESETS_3D, TrainConfig, config_from_json, preset, resolve_config
from metasdf.data import frame_points, frame_values, grid_coordinates, load_shapes, to_frame
from metasdf.data3d import load_shapes_3d
from metasdf.evaluate import evaluate
from metasdf.models import MetaSDF, batched_mlp, init_layers, layer_shapes
from metasdf.models3d import DeepSDF, composite_loss
from metasdf.train import learning_rate, make_optimizer, train
from sdfkit.geometry.sdf2d import grid_sdf
from sdfkit.sources import mnist


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity") / "mnist.zarr"
    # 40 x 40 cells: the paper's 1,024 dense context points leave targets to score
    config = mnist.MnistConfig(resolution=40, surface_points=256, limit=48, val_size=8)
    mnist.prepare_mnist(out, config, workers=1)
    return out


def _reference_transform(binary: np.ndarray) -> np.ndarray:
    """The reference's SignedDistanceTransform on a thresholded image (1 inside)."""
    img = binary.astype(np.float32)
    neg_distances = ndimage.distance_transform_edt(img)
    sd_img = (img - 1.0).astype(np.uint8)
    return (ndimage.distance_transform_edt(sd_img) - neg_distances) / float(img.shape[1])


def test_reference_ground_truth_is_its_transform_and_half_a_cell_from_ours():
    rng = np.random.default_rng(3)
    r = 48
    inside = ndimage.binary_opening(rng.random((r, r)) < 0.35, iterations=1)
    inside[0], inside[:, 0] = False, False
    ours = torch.from_numpy(grid_sdf(inside) * (2.0 / r)).float()
    reference = frame_values(ours, r, "reference").numpy()
    np.testing.assert_allclose(reference, _reference_transform(inside), atol=1e-6)
    # the two conventions differ by half a cell everywhere, in the reference's units
    np.testing.assert_allclose(np.abs(ours.numpy() / 2 - reference), 0.5 / r, atol=1e-6)


def test_reference_coordinates_are_its_mgrid():
    r = 16
    mgrid = np.stack(np.mgrid[:r, :r], axis=-1)[None, ...].astype(np.float32)
    mgrid = (mgrid / r - 0.5).reshape(-1, 2)  # the reference's get_mgrid, row-major like our grids
    np.testing.assert_allclose(frame_points(grid_coordinates(r), r, "reference").numpy(), mgrid, atol=1e-7)


def test_a_store_in_the_reference_frame_keeps_signs_and_converts_points_like_cells(store):
    shapes = load_shapes(store, "train", limit=4)
    ref = to_frame(shapes, "reference")
    r = shapes.resolution
    assert ref.frame == "reference" and torch.equal(torch.sign(ref.grids), torch.sign(shapes.grids))
    # a level-set point one third of the way between two cell centres stays one third of the way
    a, b = shapes.coords[5], shapes.coords[6]
    point = torch.stack([a + (b - a) / 3])
    torch.testing.assert_close(
        frame_points(point, r, "reference")[0], ref.coords[5] + (ref.coords[6] - ref.coords[5]) / 3
    )
    torch.testing.assert_close(ref.surface, frame_points(shapes.surface, r, "reference"))


def test_eval_reports_the_reference_metric_computed_by_hand(store, tmp_path):
    config = preset("cpu", model="metasdf", context="dense").replace(
        hidden=16, steps=2, batch_size=4, context_points=64
    )
    run = tmp_path / "run"
    train(store, run, config)
    report = evaluate(run, store, split="test", limit=6, figures=False)
    shapes = load_shapes(store, "test", limit=6)
    r = shapes.resolution
    from metasdf.train import load_run

    _, model, _ = load_run(run)
    generator = torch.Generator().manual_seed(1234)
    from metasdf.evaluate import _full_grid_batch

    batch = _full_grid_batch(shapes, torch.arange(6), config, generator, "cpu")
    with torch.no_grad():
        prediction = model.reconstruct(batch)[..., 0]
    reference = torch.from_numpy(
        np.stack([_reference_transform(g.reshape(r, r).numpy() < 0).reshape(-1) for g in shapes.grids])
    ).float()
    expected = ((prediction / 2 - reference) ** 2).mean().item()
    assert report["mse_reference"] == pytest.approx(expected, rel=1e-5)
    assert report["mse_reference_sdfkit_truth"] == pytest.approx(
        ((prediction / 2 - shapes.grids / 2) ** 2).mean().item(), rel=1e-5
    )
    assert report["l1_mean"] == pytest.approx((prediction - shapes.grids).abs().mean().item(), rel=1e-5)
    assert report["ground_truth_gap_mse"] == pytest.approx((0.5 / r) ** 2, rel=1e-4)
    assert report["ground_truth_gap_cells"] == pytest.approx(0.5, rel=1e-4)
    # the reference's evaluation context: every cell of the grid
    full = evaluate(run, store, split="test", limit=6, figures=False, context="reference")
    assert full["context_points"] == r * r and full["evaluation_context"] == "reference"
    assert (run / "eval-test-limit6-reference-context.json").exists()


def test_a_model_trained_in_the_reference_frame_is_scored_in_both(store, tmp_path):
    config = preset("cpu", model="metasdf", context="levelset").replace(
        hidden=16, steps=2, batch_size=4, frame="reference"
    )
    run = tmp_path / "ref"
    train(store, run, config)
    report = evaluate(run, store, split="test", limit=4, figures=True)
    shapes = load_shapes(store, "test", limit=4)
    from metasdf.evaluate import _full_grid_batch
    from metasdf.train import load_run

    _, model, _ = load_run(run)
    batch = _full_grid_batch(
        to_frame(shapes, "reference"), torch.arange(4), config, torch.Generator().manual_seed(1234), "cpu"
    )
    with torch.no_grad():
        prediction = model.reconstruct(batch)[..., 0]  # in the reference's units
    reference = frame_values(shapes.grids, shapes.resolution, "reference")
    assert report["frame"] == "reference"
    assert report["mse_reference"] == pytest.approx(((prediction - reference) ** 2).mean().item(), rel=1e-5)
    assert report["l1_mean"] == pytest.approx((2 * prediction - shapes.grids).abs().mean().item(), rel=1e-5)
    assert all(p.endswith(".png") for p in report["figures"])


def test_reference_init_starts_positive_with_a_zero_last_bias():
    shapes = layer_shapes(2, 64, 3)
    params = init_layers(shapes, "reference", generator=torch.Generator().manual_seed(0))
    w, b = params[-2], params[-1]
    assert torch.equal(b, torch.zeros(1)) and torch.allclose(w, torch.full_like(w, math.sqrt(math.pi) / 8))
    for (out, _), hidden in zip(shapes[:-1], params[:-2:2], strict=True):  # N(0, 2 / fan_out)
        assert hidden.std().item() == pytest.approx(math.sqrt(2 / out), rel=0.1)
    x = torch.rand(1, 500, 2) - 0.5
    assert (batched_mlp(x, [p.unsqueeze(0) for p in params]) >= 0).all()  # ReLU features, positive weights


def test_a_loop_longer_than_trained_takes_the_fixed_rate_when_asked():
    torch.manual_seed(0)
    model = MetaSDF(hidden=8, depth=2, inner_steps=2, inner_lr=0.05, extra_step_lr=1e-2, clamp_lr=False)
    with torch.no_grad():
        for lr in model.lrs:
            lr[1] = -0.02  # unclamped: a negative learned rate is used as it is
    x, y = torch.rand(1, 20, 2), torch.rand(1, 20, 1)
    _, history = model.specialize(x, y, steps=3, keep_graph=False, trace=True)

    def step(fast, rate):
        with torch.enable_grad():
            fast = [w.detach().requires_grad_(True) for w in fast]
            loss = (batched_mlp(x, fast) - y).pow(2).mean()
            grads = torch.autograd.grad(loss, fast)
        return [w - rate(i) * g for i, (w, g) in enumerate(zip(fast, grads, strict=True))]

    # three steps of a model trained with two: every step at the fixed rate (the reference's rule)
    want = history[0]
    for k in range(3):
        want = step(want, lambda i: 1e-2)
        for got, expected in zip(history[k + 1], want, strict=True):
            torch.testing.assert_close(got, expected)
    # the trained length: the learned rates, unclamped (the second one is negative)
    _, trained = model.specialize(x, y, steps=2, keep_graph=False, trace=True)
    want = step(step(trained[0], lambda i: model.lrs[i][0].detach()), lambda i: model.lrs[i][1].detach())
    for got, expected in zip(trained[2], want, strict=True):
        torch.testing.assert_close(got, expected)


def test_signed_distance_term_is_the_references():
    output = torch.tensor([[[0.3, -0.05], [-1.2, 0.2]]])
    target = torch.tensor([[[0.1], [-0.05]]])
    zero = torch.zeros(2)
    p = [1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(1.2))]
    bce = (-math.log(p[0]) - math.log(1 - p[1])) / 2
    signed = composite_loss(output, target, zero, term="signed").item()
    unsigned = composite_loss(output, target, zero).item()
    assert signed == pytest.approx(bce / 2 + (0.15 + 0.25) / 2 / 2, rel=1e-6)
    assert unsigned == pytest.approx(bce / 2 + (0.05 + 0.15) / 2 / 2, rel=1e-6)


def test_step_schedule_halves_every_so_many_epochs_and_codes_get_their_rate():
    config = PRESETS_3D["paper"].replace(model="deepsdf")
    shapes = 64  # 2 steps an epoch at 32 scenes a step
    assert learning_rate(config, 0, shapes) == 5e-4
    assert learning_rate(config, 2 * 350 - 1, shapes) == 5e-4
    assert learning_rate(config, 2 * 350, shapes) == 2.5e-4
    assert learning_rate(config, 2 * 700, shapes) == 1.25e-4
    model = DeepSDF(shapes=3, latent=4, hidden=16, depth=2)
    groups = make_optimizer(model, config).param_groups
    assert [g["lr"] for g in groups] == [5e-4, 1e-3]
    assert {id(p) for p in groups[1]["params"]} == {id(model.codes.weight)}


def test_deepsdf_regularizers_are_deepsdfs():
    torch.manual_seed(0)
    model = DeepSDF(shapes=4, latent=16, hidden=16, depth=2, dropout=0.0, code_reg="deepsdf", code_init_std=None)
    assert model.codes.weight.std().item() == pytest.approx(0.25, rel=0.25)  # 1 / sqrt(16)
    batch = {
        "index": torch.tensor([0, 2]),
        "target_x": torch.rand(2, 50, 3) - 0.5,
        "target_y": torch.rand(2, 50, 1) * 0.2 - 0.1,
        "epoch": torch.tensor([25.0, 25.0]),
    }
    z = model.codes.weight[[0, 2]]
    with torch.no_grad():
        fit = (model.decode(batch["target_x"], z).clamp(-0.1, 0.1) - batch["target_y"]).abs().mean()
        expected = fit + 1e-4 * 0.25 * z.norm(dim=1).sum() / 100  # warm-up at epoch 25 of 100
        assert model.loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_deepsdf_test_time_draws_fresh_balanced_samples():
    from metasdf.models3d import _balanced_draw

    x = torch.rand(1, 1000, 3)
    y = torch.where(torch.arange(1000) < 100, -0.01, 0.02).view(1, -1, 1)  # a tenth inside
    g = torch.Generator().manual_seed(0)
    points, first = _balanced_draw(x, y, 400, g)
    again, _ = _balanced_draw(x, y, 400, g)
    assert (first < 0).sum() == 200 and (first > 0).sum() == 200 and not torch.equal(points, again)
    # the values travel with their points
    index = torch.cdist(points[0], x[0]).argmin(dim=1)
    torch.testing.assert_close(first[0], y[0, index])


@pytest.mark.parametrize("model", ["metasdf", "autodecoder", "hypernet", "cnp"])
@pytest.mark.parametrize("context", ["dense", "levelset"])
@pytest.mark.slow
def test_paper_preset_trains_a_step_2d(store, tmp_path, model, context):
    run = tmp_path / "run"
    out = sdfkit("train", store, "--preset", "paper", "--model", model, "--context", context, "-o", run, "--steps", "1")
    assert "step 1 of 1" in out.stdout and "loss nan" not in out.stdout
    saved = config_from_json(run / "config.json")
    expected = preset("paper", model=model, context=context).replace(steps=1, epochs=None)
    assert saved == expected  # --steps replaces the preset's epochs
    settings = saved.settings()
    assert (settings["frame"], settings["outer_loss"], settings["batch_size"]) == ("reference", "l2", 32)
    assert settings["context_points"] == (1024 if context == "dense" else 512)
    fit = ["--test-steps", "2"] if model in ("autodecoder", "hypernet") else []  # not 800 latent iterations
    report = json.loads(sdfkit("eval", run, store, "--limit", "2", "--no-figures", "--json", *fit).stdout)
    assert report["frame"] == "reference" and report["mse_reference"] > 0


@pytest.mark.parametrize(
    ("model", "context"),
    [("metasdf", "dense"), ("metasdf", "levelset"), ("deepsdf", "dense"), ("pointnet", "levelset")],
)
@pytest.mark.slow
def test_paper_preset_trains_two_steps_3d(shapes3d, tmp_path, model, context):
    """The 3D paper preset, every field but the sizes of a batch (a step of 32 scenes x 24,000
    samples through a 9 x 512 network with five second-order inner steps is minutes on a CPU)."""
    full = resolve_config(shapes3d, preset_name="paper", model=model, context=context)
    assert full.optimizer.epochs == (2001 if model == "deepsdf" else 3000)
    small = full.replace(batch_size=2, context_points=200, target_points=200, steps=2, epochs=None)
    run = tmp_path / "run"
    result = train(shapes3d, run, small)
    assert result["step"] == 2 and math.isfinite(result["loss"])
    assert config_from_json(run / "config.json") == full.replace(
        batch_size=2, context_points=200, target_points=200, steps=2, epochs=None
    )
    steps = None if model == "pointnet" else 2  # an encoder takes no test-time steps
    report = evaluate(run, shapes3d, split="train", limit=1, resolution=24, figures=False, test_steps=steps)
    assert report["shapes"] == 1


@pytest.fixture(scope="module")
def shapes3d(tmp_path_factory):
    from sdfkit.geometry.shapes import make_shapes

    base = tmp_path_factory.mktemp("fid3d")
    make_shapes(base / "tree", 4, defects=("clean",))
    out = base / "shapes.zarr"
    splits = [base / "tree" / "splits" / f"{s}.json" for s in ("train", "test")]
    sdfkit(
        "prepare-shapenet",
        base / "tree",
        "-o",
        out,
        "--split",
        splits[0],
        "--split",
        splits[1],
        "--samples",
        "20000",
        "--surface-samples",
        "3000",
        "--recipe",
        "deepsdf",
        "--recipe",
        "deepsdf-test",
        "--workers",
        "1",
    )
    return out


@pytest.mark.slow
def test_3d_eval_on_the_test_recipe_with_the_reference_context(shapes3d, tmp_path):
    run = tmp_path / "run"
    sdfkit("train", shapes3d, "--model", "metasdf", "-o", run, "--steps", "2")
    out = sdfkit(
        "eval", run, "--split", "train", "--limit", "1", "--resolution", "24", "--no-figures", "--json", "--samples", "test",
        "--context", "reference", "--test-steps", "4", "--extra-step-lr", "0.01",
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert report["samples"] == "test" and report["evaluation_context"] == "reference"
    assert report["context_points"] == 50_000 and report["test_steps"] == 4
    assert (run / "eval-train-limit1-reference-context-test-samples.json").exists()
    # the fixed rate of extra steps is MetaSDF's: a DeepSDF run refuses it in one line
    plain = tmp_path / "plain"
    sdfkit("train", shapes3d, "--model", "deepsdf", "-o", plain, "--steps", "1")
    bad = sdfkit("eval", plain, "--split", "train", "--limit", "1", "--extra-step-lr", "0.01", check=False)
    assert_user_error(bad, "--extra-step-lr")
    # DeepSDF's own protocol (reconstruct.py): every test sample of the shape, 8,000 an iteration
    out = sdfkit(
        "eval", plain, "--split", "train", "--limit", "1", "--resolution", "24", "--no-figures", "--json",
        "--samples", "test", "--context", "reference", "--test-steps", "2",
    )  # fmt: skip
    report = json.loads(out.stdout)
    from sdfkit.recipes.deepsdf_test import TEST_SAMPLES

    assert report["context_points"] == TEST_SAMPLES and report["samples_per_iteration"] == 8000


def test_make_shapes_are_in_shapenet_v2_units(tmp_path):
    from sdfkit.geometry.mesh import load_mesh
    from sdfkit.geometry.shapes import make_shapes, solid_from_json

    manifest = make_shapes(tmp_path, 3, defects=("clean", "holes"))
    for shape_id, entry in manifest.items():
        mesh = load_mesh(next((tmp_path / entry["synset"] / shape_id).rglob("model_normalized.obj")))
        low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
        if entry["defect"] == "clean":  # the undamaged box: centred, diagonal 1
            assert np.linalg.norm(high - low) == pytest.approx(1.0, abs=1e-6)
            np.testing.assert_allclose((low + high) / 2, 0, atol=1e-6)
        solid = solid_from_json(entry["parts"], entry.get("holes"))
        # the manifest's exact SDF is zero on the mesh (vertices of the watertight union lie on it)
        assert np.abs(solid.sdf(mesh.vertices)).max() < 2e-3


def test_paper_preset_builds_the_papers_2d_baselines():
    """The 2D paper preset's baselines as the paper and the reference code have them, read from
    the built models: a CNP set encoder of 4 linear layers (9 on request), the reference's
    hypernetwork (an MLP of 3 linear layers per weight tensor, hidden 256, giving the whole
    tensor), auto-decoder codes drawn with std 1e-3 and penalized by mean(z^2) with weight 1."""
    import torch

    from metasdf.models import AutoDecoder, ConditionalNP, HyperAutoDecoder
    from metasdf.train import build_model

    torch.manual_seed(0)
    cnp = build_model(preset("paper", model="cnp", context="dense"), 10)
    assert isinstance(cnp, ConditionalNP)
    assert sum(isinstance(m, torch.nn.Linear) for m in cnp.encoder) == 4
    nine = build_model(preset("paper", model="cnp", context="dense").replace(encoder_layers=9), 10)
    assert sum(isinstance(m, torch.nn.Linear) for m in nine.encoder) == 9
    assert (
        sum(
            isinstance(m, torch.nn.Linear) for m in build_model(preset("cpu", model="cnp", context="dense"), 10).encoder
        )
        == 3
    )

    hyper = build_model(preset("paper", model="hypernet", context="dense"), 2000)
    assert isinstance(hyper, HyperAutoDecoder) and hyper.base is None
    # one MLP per weight and per bias of the 2 -> 256 x 3 -> 1 network: 8 tensors, 3 layers each
    assert len(hyper.heads) == 8
    assert all(sum(isinstance(m, torch.nn.Linear) for m in head) == 3 for head in hyper.heads)
    assert [head[-1].out_features for head in hyper.heads] == [512, 256, 65536, 256, 65536, 256, 256, 1]
    assert hyper.heads[0][0].in_features == 256 and hyper.heads[0][0].out_features == 256
    assert abs(float(hyper.codes.weight.detach().std()) - 1e-3) < 1e-4

    decoder = build_model(preset("paper", model="autodecoder", context="dense"), 2000)
    assert isinstance(decoder, AutoDecoder) and abs(float(decoder.codes.weight.detach().std()) - 1e-3) < 1e-4
    z = torch.full((2, 256), 0.5)
    assert torch.allclose(decoder.penalty(z), torch.full((2,), 0.25))  # 1 x mean(z^2)
    cpu = build_model(preset("cpu", model="autodecoder", context="dense"), 2000)
    assert torch.allclose(cpu.penalty(torch.full((2, 128), 0.5)), torch.full((2,), 1e-4 * 128 * 0.25))
    # a hypernetwork of the paper's gives every weight from the code: the output moves with it
    x = torch.rand(1, 5, 2)
    a, b = hyper.decode(x, torch.zeros(1, 256)), hyper.decode(x, torch.ones(1, 256))
    assert not torch.allclose(a, b)


def test_the_auto_decoders_test_time_fit_uses_the_training_loss(monkeypatch):
    """An auto-decoder trained with l2 fits its test-time code with l2 (it was always l1): the
    fit's gradient on its first step equals that of the training loss plus the regularizer,
    computed by hand."""
    import torch

    from metasdf.models import AutoDecoder

    captured = {}
    original = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        captured["grad"] = self.param_groups[0]["params"][0].grad.clone()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    torch.manual_seed(0)
    for outer in ("l1", "l2"):
        model = AutoDecoder(shapes=4, latent=8, hidden=16, depth=2, outer_loss=outer, test_iters=1, fit_lr=1.0)
        batch = {
            "context_x": torch.rand(2, 30, 2),
            "context_y": torch.rand(2, 30, 1) - 0.5,
            "target_x": torch.rand(2, 7, 2),
        }
        model.reconstruct(batch)
        z = torch.zeros(2, 8, requires_grad=True)
        prediction = model.decode(batch["context_x"], z)
        error = (prediction - batch["context_y"]).abs() if outer == "l1" else (prediction - batch["context_y"]) ** 2
        (error.mean(dim=(1, 2)).sum() + model.penalty(z).sum()).backward()
        assert torch.allclose(captured["grad"], z.grad, atol=1e-6), outer


def test_the_papers_concatenation_auto_decoder_takes_the_code_at_the_input_and_the_third_layer(tmp_path):
    """--preset paper's concatenation auto-decoder: [x, z] enters the first layer and again the
    third (its weight has hidden + 2 + latent columns); its output equals the same network
    computed layer by layer by hand; the setting survives config.json."""
    from metasdf.config import config_from_json
    from metasdf.train import build_model

    config = preset("paper", model="autodecoder", context="dense")
    assert config.codes.latent_in == (2,)
    model = build_model(config, 5)
    weights = list(model.decoder.params)[0::2]
    assert [tuple(w.shape) for w in weights] == [(256, 258), (256, 256), (256, 256 + 258), (1, 256)]
    torch.manual_seed(0)
    x, z = torch.rand(2, 7, 2), torch.randn(2, 256) * 0.1
    params = list(model.decoder.params)
    code = torch.cat([x, z.unsqueeze(1).expand(-1, 7, -1)], dim=2)
    h = torch.relu(code @ params[0].T + params[1])
    h = torch.relu(h @ params[2].T + params[3])
    h = torch.relu(torch.cat([h, code], dim=2) @ params[4].T + params[5])
    expected = h @ params[6].T + params[7]
    assert torch.allclose(model.decode(x, z), expected, atol=1e-5)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dataclasses.asdict(config)))
    assert config_from_json(path) == config
    assert build_model(preset("cpu", model="autodecoder", context="dense"), 5).decoder.latent_in == ()


@pytest.mark.slow
def test_a_length_in_epochs_becomes_steps_of_the_split(store, tmp_path):
    """--epochs: the paper preset's 50 (encoders, MetaSDF) and 150 (auto-decoders) epochs, 3,000
    in 3D; a run of 2 epochs over the store's 40 training digits at batch 16 takes ceil(2 x 40 /
    16) = 5 steps and records them; --steps given alone replaces the preset's epochs."""
    from metasdf.train import steps_for_epochs

    assert preset("paper", model="metasdf", context="dense").optimizer.epochs == 50
    assert preset("paper", model="cnp", context="levelset").optimizer.epochs == 50
    assert preset("paper", model="autodecoder", context="dense").optimizer.epochs == 150
    assert preset("paper", model="hypernet", context="dense").optimizer.epochs == 150
    assert preset("paper", model="metasdf", context="dense", kind="shapenet").optimizer.epochs == 3000
    assert preset("paper", model="deepsdf", context="dense", kind="shapenet").optimizer.epochs == 2001
    assert preset("cpu", model="metasdf", context="dense").optimizer.epochs is None
    config = preset("cpu", model="metasdf", context="dense").replace(epochs=2, batch_size=16)
    assert steps_for_epochs(config, 40) == 5
    run = tmp_path / "run"
    out = sdfkit("train", store, "--model", "cnp", "--epochs", "2", "-o", run)
    assert "step 5 of 5" in out.stdout
    saved = json.loads((run / "config.json").read_text())
    assert saved["optimizer"]["epochs"] == 2 and saved["optimizer"]["steps"] == 5
    resolved = resolve_config(store, preset_name="paper", model="metasdf", steps=7)
    assert resolved.optimizer.steps == 7 and resolved.optimizer.epochs is None


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_cpu_with_tiny_sizes():
    """benchmarks/gpu_check.py, the one script a lent GPU runs (issue 35): with --tiny the same
    code runs on a CPU in seconds and prints its table."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "gpu_check.py"), "--tiny", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("gpu_check on cpu")
    rate = float(next(line for line in lines if "steps/s" in line).split()[-1])
    assert rate > 0
    assert "92,188" in run.stdout  # 50 epochs x 59,000 digits / 32
    ratio = float(lines[-1].split()[-1])
    assert ratio > 0


def test_the_3d_paper_preset_meshes_at_256():
    """The reference meshes at 256^3 (reconstruction.py): the 3D paper preset's runs do too when
    eval is not given --resolution; the cpu preset stays at 128."""
    assert preset("paper", model="metasdf", context="dense", kind="shapenet").evaluation.mesh_resolution == 256
    assert preset("paper", model="deepsdf", context="dense", kind="shapenet").evaluation.mesh_resolution == 256
    assert preset("cpu", model="metasdf", context="dense", kind="shapenet").evaluation.mesh_resolution == 128


@pytest.mark.slow
def test_the_3d_paper_preset_scores_the_context_too(shapes3d):
    """The reference's dense query is all 24,000 samples of a scene, its context a half of them
    (levelset_data.meta_split): the paper preset's batches score 12,000 context samples and
    12,000 others, both halves balanced; the cpu preset scores the separate targets only."""
    config = preset("paper", model="metasdf", context="dense", kind="shapenet")
    assert config.tasks.targets_include_context and config.tasks.context_points == config.tasks.target_points == 12_000
    config = config.replace(context_points=64, target_points=96)  # the same draw, small
    shapes = load_shapes_3d(shapes3d, "train")
    batch = shapes.batch(torch.tensor([0, 1]), config, torch.Generator().manual_seed(0))
    assert batch["target_x"].shape == (2, 160, 3)
    torch.testing.assert_close(batch["target_x"][:, :64], batch["context_x"])
    for half in (batch["target_y"][:, :64], batch["target_y"][:, 64:]):
        assert ((half <= 0).sum(1) == half.shape[1] // 2).all()
    assert not preset("paper", model="deepsdf", context="dense", kind="shapenet").tasks.targets_include_context
    cpu = preset("cpu", model="metasdf", context="dense", kind="shapenet")
    assert not cpu.tasks.targets_include_context
    assert shapes.batch(torch.tensor([0]), cpu, torch.Generator())["target_x"].shape[1] == cpu.tasks.target_points


def test_deepsdf_trains_with_the_composite_loss_under_the_paper_preset(shapes3d):
    """The paper's Table 2 trains DeepSDF with the composite loss (its clamped l1 is a separate
    remark): the paper preset's DeepSDF has a sign logit and a distance, its loss is
    composite_loss with its own learned weights (checked by hand), its field gives the SDF and the
    logit; --loss l1 gives DeepSDF's clamped l1, and an older run's config (no deepsdf_loss) too."""
    from metasdf.train import build_model

    config = resolve_config(shapes3d, preset_name="paper", model="deepsdf", context="dense")
    assert config.losses.deepsdf_loss == "composite"
    small = config.replace(hidden=32, depth=4, latent=8, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(small, 3)
    assert model.decoder.out.out_features == 2 and model.log_sigma.shape == (2,)
    with torch.no_grad():
        model.log_sigma.copy_(torch.tensor([0.3, -0.2]))
    batch = {"index": torch.tensor([0, 2]), "target_x": torch.rand(2, 50, 3) * 2 - 1}
    batch["target_y"] = batch["target_x"].norm(dim=2, keepdim=True) - 0.5
    output = model.decode(batch["target_x"], model.codes(batch["index"]))
    logit, distance, sdf = output[..., 0], output[..., 1], batch["target_y"][..., 0]
    s0, s1 = math.exp(0.3), math.exp(-0.2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, (sdf > 0).float(), reduction="none").mean(dim=1)
    by_hand = bce / (2 * s0**2) + (distance - sdf).abs().mean(dim=1) / (2 * s1**2) + math.log(s0 * s1)
    z = model.codes(batch["index"])
    penalty = 1e-4 * min(1.0, 100 / 100) * z.norm(dim=1).sum() / 100  # deepsdf regularizer, warm
    assert torch.allclose(model.loss(dict(batch, epoch=torch.full((2,), 100.0))), by_hand.mean() + penalty, atol=1e-6)
    field = model.field(batch["target_x"][:1, :20], batch["target_y"][:1, :20], iters=2)
    values = field(torch.rand(7, 3))
    assert values.shape == (7, 2) and torch.equal(torch.sign(values[:, 0]) >= 0, values[:, 1] >= 0)
    plain = resolve_config(shapes3d, preset_name="paper", model="deepsdf", context="dense", loss="l1")
    assert plain.losses.deepsdf_loss == "clamped-l1" and plain.losses.loss == "composite"
    assert build_model(plain.replace(hidden=32, depth=4), 3).decoder.out.out_features == 1
    assert preset("cpu", model="deepsdf", context="dense", kind="shapenet").losses.deepsdf_loss == "clamped-l1"


def test_the_3d_paper_preset_learns_the_composite_weights_as_the_reference_does():
    """The reference learns sigma itself from 1 (meta_modules.py: nn.Parameter(torch.ones(2))),
    sdfkit's cpu preset log sigma: the paper preset's MetaSDF has sigma parameters, and its outer
    loss and the loss's gradient with respect to sigma equal the reference's formula computed by
    hand, bce / (2 s0^2) + l1 / (2 s1^2) + log(s0 s1)."""
    from metasdf.train import build_model

    config = preset("paper", model="metasdf", context="dense", kind="shapenet").replace(hidden=16, depth=3)
    assert config.losses.sigma == "direct"
    model = build_model(config, 1)
    assert torch.equal(model.outer_sigma.detach(), torch.ones(2)) and not hasattr(model, "outer_log_sigma")
    with torch.no_grad():
        model.outer_sigma.copy_(torch.tensor([0.7, 1.4]))
    output = torch.randn(2, 30, 2)
    target = torch.randn(2, 30, 1) * 0.1
    loss = model.outer_loss(output, target)
    loss.backward()
    sigma = torch.tensor([0.7, 1.4], requires_grad=True)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(output[..., 0], (target[..., 0] > 0).float())
    l1 = (output[..., 1] - target[..., 0]).abs().mean()
    reference = bce / (2 * sigma[0] ** 2) + l1 / (2 * sigma[1] ** 2) + torch.log(sigma.prod())
    reference.backward()
    assert torch.allclose(loss, reference.detach(), atol=1e-6)
    assert torch.allclose(model.outer_sigma.grad, sigma.grad, atol=1e-6)
    cpu = build_model(preset("cpu", model="metasdf", context="dense", kind="shapenet"), 1)
    assert hasattr(cpu, "outer_log_sigma") and cpu.sigma == "log"


def test_the_paper_presets_build_the_papers_metasdf_networks_and_inner_loops():
    """Read from the built models: 2D, 2 -> 256 x 3 -> 1 (the reference's ReLUFC with 2 hidden
    layers), 5 inner steps with a rate per weight entry and per step from 0.1, unclamped, second
    order; 3D, 3 -> 512 x 9 -> 2 with rates from 5e-3, sigma from 1; the level-set network one
    layer shallower with one output; the optimizers' rates and clipping as the reference's."""
    from metasdf.train import build_model

    torch.manual_seed(0)
    cases = {
        "2d": (preset("paper", model="metasdf", context="dense"), [(256, 2), (256, 256), (256, 256), (1, 256)], 0.1),
        "3d": (
            preset("paper", model="metasdf", context="dense", kind="shapenet"),
            [(512, 3)] + [(512, 512)] * 8 + [(2, 512)],
            5e-3,
        ),
        "3d-levelset": (
            preset("paper", model="metasdf", context="levelset", kind="shapenet"),
            [(512, 3)] + [(512, 512)] * 7 + [(1, 512)],
            5e-3,
        ),
    }
    for name, (config, shapes, rate) in cases.items():
        model = build_model(config, 10)
        weights = [tuple(w.shape) for w in model.weights if w.dim() == 2]
        assert weights == shapes, name
        assert model.steps == 5 and not model.first_order and not model.clamp_lr, name
        for w, lr in zip(model.weights, model.lrs, strict=True):
            assert lr.shape == (5, *w.shape) and torch.all(lr == rate), name
    assert preset("paper", model="metasdf", context="dense").optimizer.lr == 1e-4
    three = preset("paper", model="metasdf", context="dense", kind="shapenet")
    assert (three.optimizer.lr, three.optimizer.clip_grad_value, three.optimizer.batch_size) == (5e-4, 0.5, 32)
    assert torch.equal(build_model(three, 10).outer_sigma, torch.ones(2))


@pytest.mark.slow
def test_seeds_reach_training_and_evaluation(store, tmp_path):
    """The paper reports mean / std over 3 runs: ``train --seed`` changes the initial weights and
    the batches (the same seed gives the same weights, bit for bit), ``eval --seed`` the drawn
    context, each evaluation in its own file."""
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        runs[name] = tmp_path / name
        sdfkit("train", store, "--model", "metasdf", "-o", runs[name], "--steps", "2", "--seed", seed)
    weights = {name: torch.load(run / "checkpoint.pt", weights_only=False)["model_state"] for name, run in runs.items()}
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["c"][k]) for k in weights["a"])
    assert json.loads((runs["c"] / "config.json").read_text())["seed"] == 2
    reports = {}
    for seed in (None, 7):
        extra = ["--seed", str(seed)] if seed is not None else []
        sdfkit("eval", runs["a"], store, "--limit", "3", "--no-figures", *extra)
        name = "eval-test-limit3" + (f"-seed{seed}" if seed is not None else "") + ".json"
        reports[seed] = json.loads((runs["a"] / name).read_text())
    assert reports[None]["l1_mean"] != reports[7]["l1_mean"]  # another context, another fit


@pytest.mark.slow
def test_show_config_prints_the_resolved_settings_and_trains_nothing(store, tmp_path):
    """``--show-config`` prints every field the run would train with (the preset for this store,
    model and context, with the options given), section by section, and writes no run folder;
    every field of TrainConfig is in exactly one section."""
    from metasdf.config import SECTIONS

    listed = [name for names in SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(TrainConfig().settings())
    out = sdfkit(
        "train", store, "--preset", "paper", "--model", "hypernet", "--seed", "3", "-o", tmp_path / "r", "--show-config"
    ).stdout
    shown = dict(line.split(None, 1) for line in out.strip().splitlines() if not line.startswith("["))
    assert [line for line in out.splitlines() if line.startswith("[")][:2] == ["[run]", "[optimizer]"]
    expected = preset("paper", model="hypernet", context="dense").replace(seed=3)
    assert set(shown) == set(expected.settings())
    assert shown["hyper_layers"] == "3" and shown["seed"] == "3" and shown["model"] == "'hypernet'"
    assert shown["epochs"] == "150" and shown["code_reg"] == "'reference'"
    assert not (tmp_path / "r").exists()
