"""The vecset recipe (Hunyuan3D-2.1's and Dora's samples) against exact truth, its sharp edges
against a brute-force pass over the outer surface's edges, and its exports read by Hunyuan3D-2.1's
and Dora's own data classes (tests/projects.py; skipped without their code)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import trimesh
import zarr
from projects import needs, project, run_their_code
from test_cli import sdfkit

from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.mesh import load_mesh
from sdfkit.geometry.shapes import DEFECTS, make_shapes, solid_from_json
from sdfkit.recipes.deepsdf import signed_mesh
from sdfkit.recipes.vecset import COUNT, SHARP_ANGLE, sample_vecset


def _shapes(folder, n, categories, defects):
    manifest = make_shapes(folder, n, seed=11, categories=categories, defects=defects)
    for shape_id, info in manifest.items():
        mesh = load_mesh(folder / info["synset"] / shape_id / "models" / "model_normalized.obj")
        yield shape_id, info, mesh


@pytest.mark.slow
def test_vecset_labels_are_right_on_every_defect(tmp_path):
    """Every make-shapes defect (overlap included) and the containers: labels right beyond 0.005
    (the frame's units) against the exact SDF, median |error| <= 1e-4 for the shapes whose truth
    is their outer surface (not holes, whose surface is cut open)."""
    shapes = [*_shapes(tmp_path / "a", len(DEFECTS), ("chair", "table", "airplane"), DEFECTS),
              *_shapes(tmp_path / "b", 3, ("container",), ("clean", "flipped", "soup"))]  # fmt: skip
    for shape_id, info, mesh in shapes:
        signed = signed_mesh(mesh, rng=shape_rng(0, shape_id))
        arrays = sample_vecset(signed, rng=shape_rng(0, shape_id, 6))
        loc, scale = arrays["vecset/loc"], float(arrays["vecset/scale"])
        truth = solid_from_json(info["parts"], info.get("holes"), info.get("sheets"))
        for name in ("near", "sharp_near", "volume"):
            points = arrays[f"vecset/{name}_points"].astype(np.float64)
            values = arrays[f"vecset/{name}_sdf"].astype(np.float64)
            exact = truth.sdf(points * scale + loc) / scale
            far = np.abs(exact) > 0.005
            right = np.mean((values[far] < 0) == (exact[far] < 0))
            assert right >= 0.995, (shape_id, name, right)
            if info["defect"] != "holes":
                assert np.median(np.abs(values - exact)) <= 1e-4, (shape_id, name)
        surface = arrays["vecset/surface_points"].astype(np.float64) * scale + loc
        assert np.quantile(np.abs(truth.sdf(surface)), 0.99) / scale < 2e-3, shape_id


@pytest.mark.slow
def test_sharp_points_lie_on_the_sharp_edges_of_the_outer_surface(tmp_path):
    """>= 99% of the sharp points lie within 1e-4 of an edge of the outer surface whose faces meet
    at more than the threshold (trimesh's face adjacency angles, a brute-force distance to every
    such edge); the normals are unit and point out of the solid."""
    for shape_id, info, mesh in _shapes(tmp_path, 3, ("bracket", "chair", "table"), ("clean", "flipped", "combo")):
        signed = signed_mesh(mesh, rng=shape_rng(0, shape_id))
        arrays = sample_vecset(signed, rng=shape_rng(0, shape_id, 6))
        assert arrays["vecset/sharp_edges"] > 0
        loc, scale = arrays["vecset/loc"], float(arrays["vecset/scale"])
        outer = trimesh.Trimesh(signed.outer.vertices, signed.outer.faces)
        outer.merge_vertices()
        sharp = outer.face_adjacency_angles > np.radians(SHARP_ANGLE)
        edges = outer.vertices[outer.face_adjacency_edges[sharp]]  # normalized frame
        a, b = edges[:, 0], edges[:, 1]
        pick = np.random.default_rng(0).choice(COUNT, 1500, replace=False)
        a_n, b_n = signed.scale, (loc + signed.offset) * signed.scale  # unit-box -> normalized
        points = arrays["vecset/sharp_points"][pick].astype(np.float64) * scale * a_n + b_n
        ab = b - a
        t = np.clip(np.einsum("pk,ek->pe", points, ab) - np.einsum("ek,ek->e", a, ab), 0, None)
        t = np.minimum(t / np.einsum("ek,ek->e", ab, ab), 1.0)
        nearest = np.linalg.norm(points[:, None] - (a[None] + t[..., None] * ab[None]), axis=2).min(axis=1)
        assert np.mean(nearest / (scale * a_n) <= 1e-4) >= 0.99, shape_id
        normals = arrays["vecset/sharp_normals"][pick].astype(np.float64)
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
        truth = solid_from_json(info["parts"], info.get("holes"))
        raw = arrays["vecset/sharp_points"][pick].astype(np.float64) * scale + loc
        outward = truth.sdf(raw + 2e-3 * normals * scale) > truth.sdf(raw - 2e-3 * normals * scale)
        assert outward.mean() >= 0.99, shape_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Four shapes, two per split (train, val), with the vecset recipe."""
    base = tmp_path_factory.mktemp("vecset")
    tree = base / "shapes"
    manifest = make_shapes(tree, 4, seed=2, categories=("chair", "bracket"), defects=("clean", "flipped"))
    ids = sorted(manifest)
    listing = {name: {} for name in ("train", "val")}
    for k, shape_id in enumerate(ids):
        listing["train" if k % 2 == 0 else "val"].setdefault(manifest[shape_id]["synset"], []).append(shape_id)
    splits = []
    for name, categories in listing.items():
        (base / f"{name}.json").write_text(json.dumps({"ShapeNetV2": categories}))
        splits += ["--split", base / f"{name}.json"]
    out = base / "v.zarr"
    sdfkit("prepare-shapenet", tree, "-o", out, *splits, "--recipe", "vecset", "--samples", "4000",
           "--surface-samples", "500", "--workers", "2", timeout=900)  # fmt: skip
    return base, out


HUNYUAN = "Tencent-Hunyuan/Hunyuan3D-2.1"


@needs("Tencent-Hunyuan/Hunyuan3D-2.1", ("yaml", "cv2", "pytorch_lightning"))
@pytest.mark.slow
def test_hunyuan3d_export_has_the_keys_dtypes_and_frame_of_their_own_trainset(store, tmp_path):
    """Key by key against hy3dshape/tools/mini_trainset's surface.npz, and the sdf.npz keys their
    watertight_and_sample.py writes (its sdf files are not in the snapshot); points in [0, 1]^3
    as theirs; renders RGBA 512 x 512, 24 of them, transforms.json with their keys."""
    base, out = store
    code = project(HUNYUAN, ["hy3dshape/tools/watertight", "hy3dshape/tools/mini_trainset"], tmp_path / "hy")
    export = tmp_path / "hy3d"
    sdfkit("export", out, "--to", "hunyuan3d", "-o", export, timeout=600)
    theirs_dir = next((code / "hy3dshape/tools/mini_trainset/preprocessed").iterdir())
    theirs = np.load(theirs_dir / "geo_data" / f"{theirs_dir.name}_surface.npz")
    group = zarr.open_group(str(out), mode="r")
    for shape_id in [str(i) for i in group["meta/id"][:]]:
        folder = export / "preprocessed" / shape_id
        ours = np.load(folder / "geo_data" / f"{shape_id}_surface.npz")
        assert sorted(ours.files) == sorted(theirs.files)
        for key in theirs.files:
            assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape, key
            assert ours[key][:, :3].astype(float).min() > -0.01 and ours[key][:, :3].astype(float).max() < 1.0
        script = (code / "hy3dshape/tools/watertight/watertight_and_sample.py").read_text()
        written = re.search(r"data = \{(.*?)\}", script, re.S).group(1)
        keys = re.findall(r'"(\w+)":\s*(\w+)\.astype\(np\.float16\)', written)
        sdf = np.load(folder / "geo_data" / f"{shape_id}_sdf.npz")
        assert sorted(sdf.files) == sorted(k for k, _ in keys) and all(sdf[k].dtype == np.float16 for k in sdf.files)
        assert len(sdf["vol_points"]) == 2 * COUNT and len(sdf["random_near_points"]) == 2 * COUNT
        theirs_render = json.loads((theirs_dir / "render_cond" / "transforms.json").read_text())
        ours_render = json.loads((folder / "render_cond" / "transforms.json").read_text())
        assert sorted(ours_render) == sorted(theirs_render)
        assert sorted(ours_render["frames"][0]) == sorted(theirs_render["frames"][0])
        assert len(ours_render["frames"]) == 24 and (folder / "render_cond" / "mesh.ply").is_file()
        from PIL import Image

        image = Image.open(folder / "render_cond" / "000.png")
        assert image.mode == "RGBA" and image.size == (512, 512)


@needs("Tencent-Hunyuan/Hunyuan3D-2.1", ("yaml", "cv2", "pytorch_lightning"))
@pytest.mark.slow
def test_hunyuan3d_reads_its_export_with_its_own_data_module(store, tmp_path):
    """hy3dshape.data.dit_asl.AlignedShapeLatentModule with the dataset params of their
    mini-overfitting config (pc_size 81920, sharp-edge labels, normals, image_size 518), train and
    val folders of the export, three passes over the shapes each."""
    base, out = store
    code = project(HUNYUAN, ["hy3dshape/hy3dshape/data", "hy3dshape/configs"], tmp_path / "hy")
    export = tmp_path / "hy3d"
    sdfkit("export", out, "--to", "hunyuan3d", "-o", export, timeout=600)
    config = "hy3dshape/configs/hunyuandit-mini-overfitting-flowmatching-dinog518-bf16-lr1e4-512.yaml"
    result = run_their_code(
        f"""
        import importlib.util, json, sys, types, yaml
        root = {str(code / "hy3dshape")!r}
        for name in ("hy3dshape", "hy3dshape.data"):  # the package without its __init__ (the pipelines)
            package = types.ModuleType(name)
            package.__path__ = [root + "/" + name.replace(".", "/")]
            sys.modules[name] = package
        from hy3dshape.data.dit_asl import AlignedShapeLatentModule
        params = yaml.safe_load(open(root + "/" + {config.removeprefix("hy3dshape/")!r}))["dataset"]["params"]
        params |= {{"train_data_list": {str(export / "train")!r}, "val_data_list": {str(export / "val")!r},
                    "num_workers": 0, "val_num_workers": 0}}
        module = AlignedShapeLatentModule(**params)
        out = {{}}
        for split, loader in (("train", module.train_dataloader()), ("val", module.val_dataloader())):
            batches = []
            for k, batch in enumerate(loader):
                batches.append(batch)
                if k + 1 == 3:  # three passes over the two shapes of the split, two per batch
                    break
            surface = batches[-1]["surface"]
            out[split] = {{"batches": len(batches), "surface": list(surface.shape), "image": list(batches[-1]["image"].shape),
                           "low": float(surface[..., :3].min()), "high": float(surface[..., :3].max()),
                           "normal": float(surface[..., 3:6].norm(dim=-1).mean())}}
        print(json.dumps(out))
        """,
        path=code / "hy3dshape",
        cwd=code / "hy3dshape",
        stubs=["torchvision"],
    )
    for split in ("train", "val"):
        got = result[split]
        assert got["batches"] == 3 and got["surface"] == [2, 81920, 7] and got["image"] == [2, 3, 518, 518], got
        assert -0.01 < got["low"] and got["high"] < 1.0 and abs(got["normal"] - 1) < 1e-3, got


@needs("Seed3D/Dora", ("yaml", "pytorch_lightning", "omegaconf", "jaxtyping", "typeguard"))
@pytest.mark.slow
def test_dora_reads_its_export_with_its_own_dataset(store, tmp_path):
    """craftsman.data.objaverse.ObjaverseDataModule with the data section of Dora-VAE-train.yaml
    (tsdf supervision, n_supervision 21384/10000/10000, random rotations), three epochs of train
    and val; the points in Dora's (-1, 1) frame, sdf positive inside."""
    base, out = store
    code = project("Seed3D/Dora", ["pytorch_lightning/craftsman", "pytorch_lightning/configs"], tmp_path / "dora")
    root = code / "pytorch_lightning"
    export = root / "data" / "sdfkit"
    sdfkit("export", out, "--to", "dora", "-o", export, "--relative-to", root, timeout=600)
    npz = np.load(next(export.glob("*.npz")))
    assert npz["fps_coarse_surface"].shape == (32768, 1, 6) and npz["fps_sharp_surface"].shape == (32768, 1, 6)
    assert npz["rand_points"].shape[1] == 4 and len(npz["rand_points"]) > 400_000 + 10_000
    assert np.abs(npz["fps_coarse_surface"][:, 0, :3]).max() <= 1.0 + 1e-3
    assert np.abs(npz["rand_points"][400_000:, :3]).max() <= 1.05
    result = run_their_code(
        """
        import json, yaml
        from craftsman.data.objaverse import ObjaverseDataModule
        cfg = yaml.safe_load(open("configs/shape-autoencoder/Dora-VAE-train.yaml"))["data"]
        cfg |= {"root_dir": "./data/sdfkit", "num_workers": 0}
        module = ObjaverseDataModule(cfg)
        module.setup()
        out = {}
        for split, loader in (("train", module.train_dataloader()), ("val", module.val_dataloader())):
            seen, inside = 0, []
            for epoch in range(3):
                for batch in loader:
                    seen += len(batch["uid"])
                    inside.append(float((batch["sdf"] > 0).float().mean()))
            out[split] = {"seen": seen, "coarse": list(batch["coarse_surface"].shape),
                          "sharp": list(batch["sharp_surface"].shape), "points": list(batch["rand_points"].shape),
                          "sdf": list(batch["sdf"].shape), "inside": sum(inside) / len(inside)}
        print(json.dumps(out))
        """,
        path=root,
        cwd=root,
        # craftsman/__init__ imports the networks too, which need torch_cluster and mcubes (compiled):
        # the networks, not the data, are stubbed
        stubs=["craftsman.models", "craftsman.systems"],
        timeout=900,
    )
    assert result["train"]["seen"] == 3 * 2 * 100 and result["val"]["seen"] == 3 * 2  # Dora: train x100
    for split in ("train", "val"):
        got = result[split]
        assert got["coarse"][1:] == [32768, 6] and got["sharp"][1:] == [32768, 6], got
        assert got["points"][1:] == [41384, 3] and got["sdf"][1:] == [41384], got
        assert 0.05 < got["inside"] < 0.95, got


@pytest.mark.slow
def test_vecset_export_needs_the_recipe_and_the_meshes(store, tmp_path):
    base, out = store
    plain = tmp_path / "p.zarr"
    meshes = tmp_path / "m"
    meshes.mkdir()
    trimesh.creation.box().export(meshes / "box.obj")
    sdfkit("prepare-shapenet", meshes, "-o", plain, "--samples", "2000", "--surface-samples", "200", "--workers", "1")
    from test_cli import assert_user_error

    assert_user_error(sdfkit("export", plain, "--to", "dora", "-o", tmp_path / "d", check=False), "--recipe vecset")
    moved = sdfkit("export", out, "--to", "hunyuan3d", "-o", tmp_path / "h", "--meshes", tmp_path, check=False)
    assert_user_error(moved, "--meshes")
    assert not (tmp_path / "h").exists()


def test_a_fin_folded_back_on_itself_has_a_sharp_edge_with_a_unit_normal():
    """Two faces meeting at almost 180 degrees (a fin of zero thickness, as chair_model.obj has)
    have no mean normal: the edge takes one face's, a unit vector, not a zero one."""
    from sdfkit.geometry.sign import OuterSurface
    from sdfkit.geometry.topology import sharp_edges

    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 1, 1e-4]])
    faces = np.array([[0, 1, 2], [1, 0, 3]])
    no, empty = np.zeros(2, bool), np.zeros((0, 3))
    surface = OuterSurface(vertices, faces, no, no, no, np.ones(2, bool), empty, empty.astype(np.int64))
    a, b, normal = sharp_edges(surface, SHARP_ANGLE)
    assert len(a) == 1 and {tuple(a[0]), tuple(b[0])} == {(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)}
    np.testing.assert_allclose(np.linalg.norm(normal, axis=1), 1.0)
