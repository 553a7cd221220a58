"""``sdfkit export --to trellis``: TRELLIS' metadata.csv, voxels and renders, checked against
independent references (hashlib on the files' bytes, open3d's voxelization as TRELLIS'
``voxelize.py`` calls it, the source mesh turned and scaled by hand, projections through the
written cameras as TRELLIS' ``extract_feature.py`` makes them) and read by TRELLIS' own
``SparseStructure`` dataset for three epochs (tests/projects.py: where its code comes from)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
import trimesh
from projects import needs, project, run_their_code
from test_cli import sdfkit

from sdfkit.builders.trellis import read_points_ply, write_points_ply
from sdfkit.geometry.shapes import make_shapes

UTILS3D = "9a4eb15e4021b67b12c460c7057d642626897ec8"
"""The utils3d commit TRELLIS' setup.sh installs."""


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A plain folder of two make-shapes meshes and a byte-for-byte copy of one under another
    name, prepared and exported with four views per object."""
    base = tmp_path_factory.mktemp("trellis")
    made = base / "made"
    make_shapes(made, 2, seed=7, categories=("chair", "airplane"), defects=("clean",))
    tree = base / "objects"
    (tree / "copies").mkdir(parents=True)
    sources = sorted(made.rglob("*.obj"))
    for k, path in enumerate(sources):
        shutil.copy(path, tree / f"object{k}.obj")
    shutil.copy(sources[0], tree / "copies" / "again.obj")
    store = base / "s.zarr"
    sdfkit("prepare-shapenet", tree, "-o", store, "--samples", "2000", "--surface-samples", "300", "--workers", "1")
    out = base / "out"
    result = sdfkit("export", store, "--to", "trellis", "-o", out, "--views", "4", "--aesthetic-score", "5",
                    "--relative-to", base)  # fmt: skip
    assert "wrote 3 shapes as trellis" in result.stdout
    return tree, out


def _rows(out):
    with open(out / "metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_objects_are_keyed_by_the_sha256_of_their_bytes_and_copies_written_once(export):
    tree, out = export
    rows = _rows(out)
    by_id = {row["file_identifier"]: row for row in rows}
    copies = ["copies/again", "object0"]
    assert len(by_id) == 2 and "object1" in by_id and len(set(copies) & set(by_id)) == 1
    for shape_id, row in by_id.items():
        assert row["sha256"] == hashlib.sha256((tree / f"{shape_id}.obj").read_bytes()).hexdigest()
        assert row["voxelized"] == "True" and row["rendered"] == "True" and float(row["aesthetic_score"]) == 5.0
        assert int(row["num_voxels"]) == len(read_points_ply(out / "voxels" / f"{row['sha256']}.ply")) > 100
        assert row["local_path"] == f"objects/{shape_id}.obj"
    kept = next(i for i in copies if i in by_id)
    other = next(i for i in copies if i != kept)
    with open(out / "duplicates.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"file_identifier": other, "sha256": by_id[kept]["sha256"], "kept": kept}]
    assert sorted(p.stem for p in (out / "voxels").iterdir()) == sorted(r["sha256"] for r in rows)


def test_voxels_are_the_cells_open3d_gives_trellis_voxelize(export):
    """TRELLIS' voxelize.py, step by step with open3d, on the mesh.ply written beside the renders."""
    import open3d as o3d

    _, out = export
    for row in _rows(out):
        mesh = o3d.io.read_triangle_mesh(str(out / "renders" / row["sha256"] / "mesh.ply"))
        mesh.vertices = o3d.utility.Vector3dVector(np.clip(np.asarray(mesh.vertices), -0.5 + 1e-6, 0.5 - 1e-6))
        grid = o3d.geometry.VoxelGrid.create_from_triangle_mesh_within_bounds(
            mesh, voxel_size=1 / 64, min_bound=(-0.5, -0.5, -0.5), max_bound=(0.5, 0.5, 0.5)
        )
        theirs = {tuple(v.grid_index) for v in grid.get_voxels()}
        ours = read_points_ply(out / "voxels" / f"{row['sha256']}.ply")
        assert ours.dtype == np.float32 and np.abs(ours).max() < 0.5
        assert {tuple(c) for c in np.round((ours + 0.5) * 64 - 0.5).astype(int)} == theirs


def test_mesh_and_cameras_are_in_trellis_blender_world(export):
    """mesh.ply is the source turned z-up ((x, y, z) -> (x, -z, y)) and fitted into [-0.5, 0.5]^3;
    its vertices, projected as extract_feature.py projects voxels (c2w with y and z negated,
    inverted, a pinhole of the frame's camera_angle_x), land on the rendered silhouette."""
    from PIL import Image
    from scipy.ndimage import binary_dilation

    tree, out = export
    for row in _rows(out):
        folder = out / "renders" / row["sha256"]
        source = trimesh.load(tree / f"{row['file_identifier']}.obj", process=False).vertices
        turned = np.stack([source[:, 0], -source[:, 2], source[:, 1]], axis=1)
        low, high = turned.min(axis=0), turned.max(axis=0)
        expected = (turned - (low + high) / 2) / (high - low).max()
        written = trimesh.load(folder / "mesh.ply", process=False).vertices
        assert np.allclose(np.sort(written, axis=0), np.sort(expected, axis=0), atol=1e-6)
        info = json.loads((folder / "transforms.json").read_text())
        assert info["aabb"] == [[-0.5] * 3, [0.5] * 3] and len(info["frames"]) == 4
        for frame in info["frames"]:
            assert sorted(frame) == ["camera_angle_x", "file_path", "transform_matrix"]
            assert frame["camera_angle_x"] == pytest.approx(np.deg2rad(40))
            c2w = np.array(frame["transform_matrix"])
            assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(2.0)
            c2w[:3, 1:3] *= -1
            w2c = np.linalg.inv(c2w)
            camera = written @ w2c[:3, :3].T + w2c[:3, 3]
            uv = camera[:, :2] / camera[:, 2:] * (0.5 / np.tan(frame["camera_angle_x"] / 2)) + 0.5
            image = np.asarray(Image.open(folder / frame["file_path"]))
            assert image.shape == (512, 512, 4)
            silhouette = binary_dilation(image[..., 3] > 0, iterations=1)
            pixel = np.clip(np.floor(uv * 512).astype(int), 0, 511)
            assert silhouette[pixel[:, 1], pixel[:, 0]].mean() > 0.99
            assert (image[..., 3] > 0).mean() > 0.01


def test_points_ply_bytes(tmp_path):
    """The header and float32 rows of utils3d's write_ply, byte by byte."""
    write_points_ply(tmp_path / "p.ply", np.array([[0.25, -0.5, 1.0]]))
    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
    expected = header + b"property float z\nend_header\n" + np.array([0.25, -0.5, 1.0], "<f4").tobytes()
    assert (tmp_path / "p.ply").read_bytes() == expected


@needs("microsoft/TRELLIS", ("pandas", "plyfile", "scipy"))
@needs("EasternJournalist/utils3d")
@pytest.mark.slow
def test_trellis_reads_its_export_with_its_own_sparse_structure_dataset(export, tmp_path):
    """trellis.datasets.SparseStructure with the dataset args of configs/vae/ss_vae_conv3d_16l8_fp16.json
    (resolution 64, min_aesthetic_score 4.5), three epochs through a DataLoader; utils3d at the
    commit TRELLIS' setup.sh installs."""
    _, out = export
    code = project("microsoft/TRELLIS", ["trellis/datasets", "trellis/__init__.py", "configs/vae"], tmp_path / "t")
    project("EasternJournalist/utils3d", ["utils3d"], tmp_path / "u", commit=UTILS3D)
    result = run_their_code(
        f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path / "u")!r})
        import torch
        from trellis.datasets import SparseStructure
        config = json.load(open("configs/vae/ss_vae_conv3d_16l8_fp16.json"))["dataset"]
        dataset = SparseStructure({str(out)!r}, **config["args"])
        loader = torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=True)
        seen = []
        for epoch in range(3):
            for batch in loader:
                seen.append([list(batch["ss"].shape), str(batch["ss"].dtype), int(batch["ss"].sum())])
        print(json.dumps({{"name": config["name"], "length": len(dataset), "seen": seen}}))
        """,
        path=code,
        cwd=code,
        stubs=["trellis.models", "trellis.modules", "trellis.pipelines", "trellis.renderers", "trellis.representations",
               "trellis.utils"],
    )  # fmt: skip
    assert result["name"] == "SparseStructure" and result["length"] == 2
    counts = sorted(int(row["num_voxels"]) for row in _rows(out))
    assert len(result["seen"]) == 6
    assert all(shape == [1, 1, 64, 64, 64] and dtype == "torch.int64" for shape, dtype, _ in result["seen"])
    assert sorted(total for _, _, total in result["seen"]) == sorted(counts * 3)
