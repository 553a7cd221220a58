"""3D MetaSDF and its baselines: loss, meshing, metrics, training, evaluation, reconstruction.

References: the Kendall-weighted loss computed by hand from its formula, an analytic sphere for
marching cubes, point sets whose Chamfer distance is known in closed form, and the normalization
recomputed here from the input cloud.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh
import zarr
from test_cli import assert_user_error, sdfkit

from metasdf.data3d import load_shapes_3d, make_batch_3d
from metasdf.models3d import MetaSDF3D, composite_loss
from metasdf.reconstruct import chamfer_distance, extract_mesh, f_score, normal_consistency, sample_mesh_points
from metasdf.train import TrainConfig
from sdfkit.errors import ShapeError
from sdfkit.geometry import shapes
from sdfkit.geometry.shapes import make_shapes


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("meta3d")
    make_shapes(base / "tree", 8, defects=("clean", "holes"))
    out = base / "shapes.zarr"
    splits = [base / "tree" / "splits" / f"{s}.json" for s in ("train", "test")]
    args = ["--split", splits[0], "--split", splits[1], "--samples", "20000", "--surface-samples", "3000"]
    sdfkit("prepare-shapenet", base / "tree", "-o", out, *args, "--workers", "2")
    return out


def test_composite_loss_matches_a_hand_computation():
    output = torch.tensor([[[0.3, 0.05], [-1.2, -0.2], [2.0, 0.4]]])  # (logit, distance)
    target = torch.tensor([[[0.1], [-0.05], [0.3]]])
    log_sigma = torch.tensor([0.2, -0.5])
    s0, s1 = math.exp(0.2), math.exp(-0.5)
    rows = [(0.3, 0.05, 0.1), (-1.2, -0.2, -0.05), (2.0, 0.4, 0.3)]
    bce = l1 = l2 = 0.0
    for logit, distance, sdf in rows:
        p = 1 / (1 + math.exp(-logit))  # probability of "outside"
        y = 1.0 if sdf > 0 else 0.0
        bce += -(y * math.log(p) + (1 - y) * math.log(1 - p)) / 3
        l1 += abs(abs(distance) - abs(sdf)) / 3
        l2 += (abs(distance) - abs(sdf)) ** 2 / 3
    expected = bce / (2 * s0**2) + l1 / (2 * s1**2) + math.log(s0 * s1)
    got = composite_loss(output, target, log_sigma)
    assert got.shape == (1,) and got.item() == pytest.approx(expected, rel=1e-6)
    squared = composite_loss(output, target, log_sigma, distance="l2")
    assert squared.item() == pytest.approx(bce / (2 * s0**2) + l2 / (2 * s1**2) + math.log(s0 * s1), rel=1e-6)
    unsigned = composite_loss(output, torch.zeros_like(target), log_sigma, signed=False)
    expected_unsigned = (0.05 + 0.2 + 0.4) / 3 / (2 * s1**2) + math.log(s1)
    assert unsigned.item() == pytest.approx(expected_unsigned, rel=1e-6)
    # the SDF is sign(logit) * |distance|
    model = MetaSDF3D(hidden=8, depth=2, inner_steps=1)
    assert torch.equal(model.sdf(output)[0, :, 0], torch.tensor([0.05, -0.2, 0.4]))


def test_marching_cubes_of_a_sphere_is_the_sphere():
    radius = 0.55
    for resolution, tolerance in ((32, 2e-3), (64, 5e-4), (128, 2e-4)):
        mesh = extract_mesh(lambda x: x.norm(dim=1) - radius, resolution)
        distance = np.linalg.norm(mesh.vertices, axis=1)
        assert np.abs(distance - radius).max() < tolerance
        tri = mesh.vertices[mesh.faces]
        volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.01)  # positive: outward faces
        full = extract_mesh(lambda x: x.norm(dim=1) - radius, resolution, coarse_to_fine=False)
        np.testing.assert_array_equal(mesh.faces, full.faces)
        np.testing.assert_allclose(mesh.vertices, full.vertices)
        assert mesh.evaluated <= (resolution + 1) ** 3
    assert mesh.evaluated < 0.08 * 129**3  # coarse to fine: a narrow band around the surface only
    for resolution in (32, 128):  # the full grid, and coarse to fine with no cell near a surface
        with pytest.raises(ShapeError, match="no zero crossing"):
            extract_mesh(lambda x: x.norm(dim=1) + 1.0, resolution)


def test_meshing_places_the_surface_with_the_sign_logit():
    """MetaSDF's SDF is sign(logit) * |distance|. Where the distance head is off, the SDF jumps
    from +|d| to -|d| at the sign flip, and interpolating it puts every vertex mid-edge (terraces);
    the logit, which changes sign at the same place, places the vertices on the surface."""
    radius, resolution = 0.55, 64
    cell = 2.0 / resolution

    def two_heads(x):
        logit = x.norm(dim=1) - radius  # zero exactly on the sphere
        distance = torch.full_like(logit, 0.3)  # a distance head that has learned nothing
        return torch.where(logit >= 0, 1.0, -1.0) * distance, logit

    sdf_only = extract_mesh(lambda x: two_heads(x)[0], resolution)
    with_logit = extract_mesh(lambda x: torch.stack(two_heads(x), dim=1), resolution)
    np.testing.assert_array_equal(with_logit.faces, sdf_only.faces)  # the same cells cross
    terraced = np.abs(np.linalg.norm(sdf_only.vertices, axis=1) - radius)
    placed = np.abs(np.linalg.norm(with_logit.vertices, axis=1) - radius)
    assert terraced.max() > 0.3 * cell
    assert placed.max() < 5e-4
    # with (sdf, logit) from the model itself: the same signs, and the logit as the second column
    model = MetaSDF3D(hidden=16, depth=2, inner_steps=1)
    out = model.field(torch.rand(1, 32, 3) - 0.5, torch.rand(1, 32, 1) - 0.5)(torch.rand(500, 3) * 2 - 1)
    assert out.shape == (500, 2)
    assert torch.equal(out[:, 0] >= 0, out[:, 1] >= 0)


@pytest.mark.parametrize("maker", [shapes.chair, shapes.table, shapes.airplane])
def test_narrow_band_meshing_equals_the_full_grid_on_thin_parts(maker):
    """Chair legs, table tops and airplane wings are a few cells thick at 64^3: the narrow band
    (and, with no band at all, the growth from sign changes alone) must find every crossing."""
    solid = maker(np.random.default_rng(3))
    vertices = solid.mesh().vertices
    centre = (vertices.max(axis=0) + vertices.min(axis=0)) / 2
    scale = 1 / (1.03 * np.linalg.norm(vertices - centre, axis=1).max())

    def sdf(x):
        return torch.from_numpy(solid.sdf(x.double().numpy() / scale + centre) * scale).float()

    full = extract_mesh(sdf, 64, coarse_to_fine=False)
    for band in (1.0, 0.0):
        mesh = extract_mesh(sdf, 64, band=band)
        np.testing.assert_array_equal(mesh.faces, full.faces)
        np.testing.assert_allclose(mesh.vertices, full.vertices)
        assert mesh.evaluated < 0.35 * 65**3


def test_chamfer_f_score_and_normal_consistency_known_values():
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert chamfer_distance(grid, grid) == 0.0
    shift = np.array([0.1, 0.0, 0.0])
    assert chamfer_distance(grid, grid + shift) == pytest.approx(2 * 0.01)  # each point's neighbour is its twin
    assert f_score(grid, grid + shift, 0.05) == 0.0 and f_score(grid, grid + shift, 0.2) == 1.0
    normals = np.tile([0.0, 0.0, 1.0], (len(grid), 1))
    assert normal_consistency(grid, normals, grid, -normals) == pytest.approx(1.0)  # orientation-free
    tilted = np.tile([0.0, np.sin(0.3), np.cos(0.3)], (len(grid), 1))
    assert normal_consistency(grid, normals, grid, tilted) == pytest.approx(np.cos(0.3))
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    points, point_normals = sample_mesh_points(sphere.vertices, sphere.faces, 5000)
    assert np.abs(np.linalg.norm(points, axis=1) - 0.5).max() < 5e-3
    assert np.einsum("ij,ij->i", point_normals, points / 0.5).min() > 0.98


@pytest.mark.slow
def test_tasks_read_windows_with_balanced_context(store):
    shapes = load_shapes_3d(store, "train")
    generator = torch.Generator().manual_seed(0)
    batch = make_batch_3d(
        shapes, torch.tensor([0, 1]), context="dense", context_points=256, target_points=500, generator=generator
    )
    assert batch["context_x"].shape == (2, 256, 3) and batch["target_y"].shape == (2, 500, 1)
    assert (batch["context_y"][:, :128] <= 0).all() and (batch["context_y"][:, 128:] > 0).all()
    # targets are one contiguous window of the stored (shuffled) samples
    points = shapes.points[0]
    start = int(torch.nonzero((points == batch["target_x"][0, 0]).all(dim=1))[0])
    assert torch.equal(points[start : start + 500], batch["target_x"][0])
    level = make_batch_3d(
        shapes, torch.tensor([2]), context="levelset", context_points=300, target_points=100, generator=generator
    )
    assert (level["context_y"] == 0).all() and level["context_x"].shape == (1, 300, 3)


@pytest.mark.parametrize(
    ("model", "context"),
    [("metasdf", "dense"), ("metasdf", "levelset"), ("deepsdf", "dense"), ("pointnet", "levelset")],
)
@pytest.mark.slow
def test_each_3d_model_trains_and_evaluates(store, tmp_path, model, context):
    run = tmp_path / "run"
    out = sdfkit("train", store, "--model", model, "--context", context, "-o", run, "--steps", "2")
    assert "step 2 of 2" in out.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["data_kind"] == "shapenet" and config["model"] == model
    result = sdfkit("eval", run, "--limit", "1", "--resolution", "32", "--json", check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["shapes"] == 1 and report["trained_steps"] == 2
    # a partial evaluation is named as one: a full eval-test.json is never replaced by it
    assert (run / "eval-test-limit1.json").exists() and (run / "eval-test-limit1-reconstructions.png").exists()
    assert not (run / "eval-test.json").exists()
    assert report["test_steps"] == {
        "metasdf": config["metasdf"]["test_steps"],
        "deepsdf": config["codes"]["test_iters"],
    }.get(model)
    if model == "metasdf":
        assert (run / "eval-test-limit1-inner-loop.png").exists()
    # the test-time steps change after training: MetaSDF's inner loop, DeepSDF's latent iterations
    again = sdfkit("eval", run, "--limit", "1", "--resolution", "32", "--test-steps", "4", check=False)
    if model == "pointnet":
        assert_user_error(again, "--test-steps")
        return
    assert again.returncode == 0, again.stderr
    assert ("4 inner steps" if model == "metasdf" else "4 latent iterations") in again.stdout
    assert json.loads((run / "eval-test-limit1.json").read_text())["test_steps"] == 4


@pytest.mark.slow
def test_wrong_model_for_the_store_is_refused(store, tmp_path):
    assert_user_error(sdfkit("train", store, "--model", "cnp", "-o", tmp_path / "x", check=False), "'cnp'", "deepsdf")
    mnist = tmp_path / "m.zarr"
    sdfkit("prepare-mnist", "-o", mnist, "--limit", "20", "--val-size", "0", "--workers", "1")
    assert_user_error(sdfkit("train", mnist, "--model", "deepsdf", "-o", tmp_path / "y", check=False), "'deepsdf'")


@pytest.mark.slow
def test_reconstruct_returns_meshes_in_the_input_coordinates(store, tmp_path):
    run = tmp_path / "levelset"
    sdfkit("train", store, "--model", "metasdf", "--context", "levelset", "-o", run, "--steps", "2")
    group = zarr.open_group(store, mode="r")
    surface = group["surface/points"][0].astype(np.float64)
    # the cloud in some scanner's frame: far away and in millimetres
    cloud = surface * 370.0 + np.array([1000.0, -50.0, 7.0])
    np.save(tmp_path / "cloud.npy", cloud)
    out = sdfkit(
        "reconstruct", run, "--points", tmp_path / "cloud.npy", "-o", tmp_path / "mesh.ply", "--resolution", "32"
    )
    assert "specialize" in out.stdout and "marching cubes" in out.stdout
    mesh = trimesh.load(tmp_path / "mesh.ply", process=False)
    centre = (cloud.min(axis=0) + cloud.max(axis=0)) / 2  # DeepSDF's normalization, recomputed here
    radius = 1.03 * np.linalg.norm(cloud - centre, axis=1).max()
    normalized = (np.asarray(mesh.vertices) - centre) / radius
    assert np.abs(normalized).max() <= 1.0 + 1e-6  # inside the grid's box
    assert np.abs(normalized).max() > 0.05  # and not collapsed onto a point: in the cloud's scale
    # a write failure is one line naming the file (a file where the output's folder should be)
    (tmp_path / "blocker").write_text("a file")
    blocked = sdfkit(
        "reconstruct", run, "--points", tmp_path / "cloud.npy", "-o", tmp_path / "blocker" / "mesh.ply", check=False
    )
    assert_user_error(blocked, "blocker")
    # a dense run from SDF samples with their normalization, and DeepSDF's pos/neg files
    dense = tmp_path / "dense"
    sdfkit("train", store, "--model", "metasdf", "--context", "dense", "-o", dense, "--steps", "2")
    scale, offset = float(group["norm/scale"][0]), group["norm/offset"][0].astype(np.float64)
    points, values = group["sdf/points"][0].astype(np.float64), group["sdf/values"][0].astype(np.float64)
    np.savez(tmp_path / "s.npz", points=points / scale - offset, sdf=values / scale, offset=offset, scale=scale)
    out = sdfkit(
        "reconstruct",
        dense,
        "--samples",
        tmp_path / "s.npz",
        "-o",
        tmp_path / "d.obj",
        "--resolution",
        "32",
        "--test-steps",
        "5",
    )
    assert "(5 inner steps)" in out.stdout
    raw = np.asarray(trimesh.load(tmp_path / "d.obj", process=False).vertices)
    assert np.abs((raw + offset) * scale).max() <= 1.0 + 1e-5
    rows = np.concatenate([points, values[:, None]], axis=1).astype(np.float32)
    np.savez(tmp_path / "deepsdf.npz", pos=rows[values > 0], neg=rows[values <= 0])
    sdfkit("reconstruct", dense, "--samples", tmp_path / "deepsdf.npz", "-o", tmp_path / "n.ply", "--resolution", "32")
    # bad input: one line each
    assert_user_error(
        sdfkit("reconstruct", dense, "--points", tmp_path / "cloud.npy", "-o", tmp_path / "x.ply", check=False),
        "--samples",
    )
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert_user_error(
        sdfkit("reconstruct", dense, "--samples", tmp_path / "bad.npz", "-o", tmp_path / "x.ply", check=False), "npz"
    )
    assert not (tmp_path / "x.ply").exists()


def test_presets_follow_the_paper_networks():
    from metasdf.config import preset

    dense = preset("paper", model="metasdf", context="dense", kind="shapenet")
    level = preset("paper", model="metasdf", context="levelset", kind="shapenet")
    # the reference's ReLUFC(num_hidden_layers=8): nine hidden layers of 512; the level-set one fewer
    assert (dense.network.hidden, dense.network.depth, level.network.depth) == (512, 9, 8)
    deepsdf = preset("paper", model="deepsdf", context="dense", kind="shapenet")
    assert (deepsdf.network.hidden, deepsdf.network.depth, deepsdf.codes.latent) == (512, 8, 256)
    assert isinstance(preset("cpu", model="pointnet", context="levelset", kind="shapenet"), TrainConfig)
