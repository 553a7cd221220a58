"""Exports read by each project's own dataset class, from its fetched code with its default
config, for three epochs: file lists, names, dtypes and frames to the letter (tests/projects.py:
where the code comes from and the shims it needs). Skipped where the project's code is absent."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from projects import needs, project, run_their_code
from test_cli import sdfkit

from sdfkit.geometry.shapes import make_shapes


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Six shapes in two categories, one of each category in every split, with the occnet,
    ifnet and ndf recipes."""
    base = tmp_path_factory.mktemp("projects")
    tree = base / "shapes"
    manifest = make_shapes(tree, 6, seed=5, categories=("chair", "table"), defects=("clean", "interior", "flipped"))
    by_category: dict[str, list[str]] = {}
    for shape_id, info in sorted(manifest.items()):
        by_category.setdefault(info["synset"], []).append(shape_id)
    splits = []
    for k, name in enumerate(("train", "val", "test")):
        listing = {synset: [ids[k]] for synset, ids in by_category.items()}
        (base / f"{name}.json").write_text(json.dumps({"ShapeNetV2": listing}))
        splits += ["--split", base / f"{name}.json"]
    out = base / "s.zarr"
    sdfkit("prepare-shapenet", tree, "-o", out, *splits, "--samples", "4000", "--surface-samples", "500",
           "--recipe", "occnet", "--recipe", "ifnet", "--recipe", "ndf", "--workers", "2", timeout=900)  # fmt: skip
    return base, out


@needs("autonomousvision/occupancy_networks", ("yaml", "plyfile"))
@pytest.mark.slow
def test_occnet_reads_its_export_with_its_own_dataset(store, tmp_path):
    """im2mesh.config.get_dataset with configs/pointcloud/onet.yaml over configs/default.yaml
    (train: points and the point-cloud input; val and test: points_iou and model.binvox too),
    through its DataLoader with collate_remove_none, three epochs: no None item."""
    base, out = store
    code = project("autonomousvision/occupancy_networks", ["im2mesh", "configs"], tmp_path / "occnet")
    export = tmp_path / "occnet-data"
    sdfkit("export", out, "--to", "occnet", "-o", export)
    assert [p.read_text().count("\n") for p in export.glob("*/train.lst")] == [0, 0]  # one id each, no trailing newline
    points = np.load(next(export.glob("*/*/points.npz")))
    assert points["loc"].dtype == np.float64 and points["scale"].dtype == np.float64
    result = run_their_code(
        f"""
        import json, torch
        from im2mesh import config, data
        cfg = config.load_config('configs/pointcloud/onet.yaml', 'configs/default.yaml')
        cfg['data']['path'] = {str(export)!r}
        out = {{}}
        for mode, batch in (('train', cfg['training']['batch_size']), ('val', 10), ('test', 1)):
            dataset = config.get_dataset(mode, cfg, return_idx=True)
            items = [dataset[i] for i in range(len(dataset))]
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=mode == 'train',
                collate_fn=data.collate_remove_none, worker_init_fn=data.worker_init_fn)
            seen = 0
            for epoch in range(3):
                for b in loader:
                    seen += len(b['idx'])
            out[mode] = {{
                'length': len(dataset), 'none': sum(i is None for i in items), 'seen': seen,
                'keys': sorted(b), 'points': list(b['points'].shape), 'occ': str(b['points.occ'].dtype),
                'inputs': list(b['inputs'].shape),
                'points_iou': list(b['points_iou'].shape) if 'points_iou' in b else None,
                'voxels': [float(items[k]['voxels'].sum()) for k in range(len(items))] if 'voxels' in b else None,
                'models': [dataset.get_model_dict(k)['model'] for k in range(len(dataset))],
            }}
        print(json.dumps(out))
        """,
        path=code,
        cwd=code,
        stubs=[
            "torchvision",
            "im2mesh.utils.libkdtree.pykdtree.kdtree",
            "im2mesh.utils.libmcubes.mcubes",
            "im2mesh.utils.libmise.mise",
            "im2mesh.utils.libsimplify.simplify_mesh",
            "im2mesh.utils.libvoxelize.voxelize",
            "im2mesh.utils.libmesh.triangle_hash",
            "im2mesh.dmc.ops.cpp_modules",
            "im2mesh.dmc.ops._cuda_ext",
        ],
    )
    group = zarr.open_group(str(out), mode="r")
    ids = [str(i) for i in group["meta/id"][:]]
    splits = [str(s) for s in group["meta/split"][:]]
    for mode in ("train", "val", "test"):
        got = result[mode]
        assert got["length"] == 2 and got["none"] == 0 and got["seen"] == 6, (mode, got)
        assert sorted(got["models"]) == sorted(i for i, s in zip(ids, splits, strict=True) if s == mode)
        assert got["points"][1:] == [2048, 3] and got["inputs"][1:] == [300, 3]
        assert got["points_iou"] == (None if mode == "train" else [got["points"][0], 100_000, 3])
        assert got["occ"] == "torch.float32"
    assert "voxels" in result["val"]["keys"] and "points_iou" in result["test"]["keys"]
    for mode in ("val", "test"):  # their binvox reader gives the store's grids back
        stored = {i: float(group["occnet/voxels"][k].sum()) for k, i in enumerate(ids)}
        assert sorted(result[mode]["voxels"]) == sorted(stored[m] for m in result[mode]["models"])


@needs("jchibane/if-net", ("trimesh",))
@pytest.mark.slow
def test_ifnet_reads_its_export_with_its_own_dataset(store, tmp_path):
    """models/data/voxelized_data_shapenet.py's VoxelizedDataset with the README's settings
    (sigmas 0.1 and 0.01, half each, 50,000 points): voxel inputs at 32^3 and 128^3
    (voxelization_<res>.npy) and point-cloud inputs of 300 and 3,000 points, three epochs each."""
    base, out = store
    code = project("jchibane/if-net", ["models"], tmp_path / "ifnet")
    export = tmp_path / "ifnet-data"
    sdfkit("export", out, "--to", "ifnet", "-o", export)
    result = run_their_code(
        f"""
        import json
        import models.data.voxelized_data_shapenet as voxelized_data
        out = {{}}
        for pointcloud, res, samples in ((False, 32, 3000), (False, 128, 3000), (True, 128, 300), (True, 128, 3000)):
            for mode in ('train', 'val', 'test'):
                dataset = voxelized_data.VoxelizedDataset(mode, voxelized_pointcloud=pointcloud,
                    pointcloud_samples=samples, res=res, sample_distribution=[0.5, 0.5], sample_sigmas=[0.1, 0.01],
                    num_sample_points=50000, batch_size=2, num_workers=0,
                    data_path={str(export)!r}, split_file={str(export / "split.npz")!r})
                seen = 0
                for epoch in range(3):
                    for b in dataset.get_loader():
                        seen += len(b['path'])
                out[f'{{mode}} {{res}} {{pointcloud}} {{samples}}'] = {{
                    'seen': seen, 'inputs': list(b['inputs'].shape), 'points': list(b['points'].shape),
                    'filled': float(b['inputs'].mean()), 'occupied': float(b['occupancies'].mean())}}
        print(json.dumps(out))
        """,
        path=code,
        cwd=code,
        stubs=["models.local_model"],
    )
    assert len(result) == 12
    for key, got in result.items():
        res = int(key.split()[1])
        assert got["seen"] == 6 and got["inputs"] == [2, res, res, res] and got["points"] == [2, 50000, 3], key
        assert 0 < got["filled"] < 0.5 and 0.05 < got["occupied"] < 0.95, key


@needs("jchibane/ndf", ("configargparse",))
@pytest.mark.slow
def test_ndf_reads_its_export_with_its_own_dataset_after_it_moved(store, tmp_path):
    """NDF's VoxelizedDataset with configs/shapenet_cars.txt (256^3 inputs of 10,000 points,
    sigmas 0.08, 0.02, 0.003 in its ratios), the export under datasets/shapenet/data of its
    repository as NDF's own; the whole repository moved after the export, three epochs."""
    base, out = store
    root = project("jchibane/ndf", ["models/data", "configs"], tmp_path / "ndf")
    sdfkit("export", out, "--to", "ndf", "-o", root / "datasets/shapenet/data", "--relative-to", root)
    split = np.load(root / "datasets/shapenet/data/split.npz")
    assert all(entry.startswith("datasets/shapenet/data/") for entry in split["train"])
    moved = tmp_path / "elsewhere" / "ndf"
    moved.parent.mkdir()
    shutil.move(root, moved)
    result = run_their_code(
        """
        import json, sys
        sys.argv = ['train.py', '--split_file', 'datasets/shapenet/data/split.npz']
        import configs.config_loader as cfg_loader
        import models.data.voxelized_data_shapenet as voxelized_data
        cfg = cfg_loader.get_config()
        out = {}
        for mode in ('train', 'val', 'test'):
            dataset = voxelized_data.VoxelizedDataset(mode, res=cfg.input_res, pointcloud_samples=cfg.num_points,
                data_path=cfg.data_dir, split_file=cfg.split_file, batch_size=cfg.batch_size,
                num_sample_points=cfg.num_sample_points_training, num_workers=0,
                sample_distribution=cfg.sample_ratio, sample_sigmas=cfg.sample_std_dev)
            seen = 0
            for epoch in range(3):
                for b in dataset.get_loader():
                    seen += len(b['path'])
            out[mode] = {'seen': seen, 'inputs': list(b['inputs'].shape),
                         'df': list(b['df'].shape) if 'df' in b else None,
                         'nonnegative': bool((b['df'] >= 0).all()) if 'df' in b else None}
        print(json.dumps(out))
        """,
        path=moved,
        cwd=moved,
        stubs=["models.local_model"],
    )
    for mode in ("train", "val", "test"):
        got = result[mode]
        assert got["seen"] == 6 and got["inputs"] == [2, 256, 256, 256], (mode, got)
        if mode != "test":
            assert got["df"] == [2, 50000] and got["nonnegative"], (mode, got)
