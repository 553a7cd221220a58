"""IF-Net's training data, with sdfkit's signs (``--recipe ifnet``).

From if-net ``data_processing/``: the frame centres the mesh's bounding box and scales its longest
side to 1 (``convert_to_scaled_off.py``: the same frame as Occupancy Networks'); boundary samples
(``boundary_sampling.py``): 100,000 surface points of the (watertight) mesh plus Gaussian noise of
standard deviation ``sigma``, for the sigmas its README uses, 0.1 and 0.01, with their
occupancies (``implicit_waterproofing`` there; sdfkit's sign here) and ``grid_coords`` (x and z
swapped, times 2: computed on export); voxelized point-cloud inputs
(``voxelized_pointcloud_sampling.py``): 300 and 3,000 surface points (its README's counts),
turned into a 128^3 occupancy grid on export; voxel inputs (``voxelize.py``, ``-res 32`` and
``-res 128``): solid voxel grids over [-0.5, 0.5]^3 (a cell filled where the outer surface touches
it or its centre is inside, as ``VoxelGrid.from_mesh`` fills a mesh), ``ifnet/voxels_<res>``.

Export (``sdfkit export --to ifnet``): ``<synset>/<id>/boundary_<sigma>_samples.npz``,
``voxelized_point_cloud_128res_<n>points.npz``, ``voxelization_<res>.npy`` (packed bits) and
``split.npz`` with entries ``/<synset>/<id>`` (IF-Net reads ``data_path + entry``).
"""

from __future__ import annotations

import numpy as np

from sdfkit.recipes.base import CATEGORY_FOLDER, ExportContext, Exporter, Recipe, nan_spec, shape_folder
from sdfkit.recipes.deepsdf import SignedMesh
from sdfkit.recipes.occnet import frame_voxels, occnet_frame
from sdfkit.store.format import ArraySpec

__all__ = [
    "RECIPE",
    "SIGMAS",
    "SAMPLES",
    "POINT_CLOUDS",
    "RESOLUTION",
    "VOXELS",
    "sample_ifnet",
    "grid_coords",
    "voxelized_point_cloud",
    "boundary_specs",
    "write_boundary",
    "write_split",
]

SIGMAS = (0.1, 0.01)
SAMPLES = 100_000
POINT_CLOUDS = (300, 3000)
RESOLUTION = 128
"""The grid of the voxelized point-cloud inputs."""
VOXELS = (32, 128)
"""The voxel inputs of its super-resolution experiments (``voxelize.py -res``)."""


def sample_ifnet(signed: SignedMesh, *, rng: np.random.Generator) -> dict:
    """The ``ifnet/*`` arrays of one shape, in IF-Net's frame."""
    loc, scale = occnet_frame(signed)
    to_normalized = scale * signed.scale
    out = {"ifnet/loc": loc, "ifnet/scale": np.float64(scale)}
    points = []
    for sigma in SIGMAS:
        # ordered by face: the queries below run faster on points close together; shuffled after
        surface, _ = signed.sampler.sample(SAMPLES, rng=rng, grouped=True)
        points.append(surface / to_normalized + sigma * rng.normal(size=(SAMPLES, 3)))
    # one query for both sets: the surface's scenes and pseudonormals are built once
    inside = np.split(signed.inside(np.concatenate(points) * to_normalized), len(SIGMAS))
    for sigma, p, occupied in zip(SIGMAS, points, inside, strict=True):
        order = rng.permutation(len(p))
        out[f"ifnet/boundary_{sigma}/points"] = np.take(p.astype(np.float32), order, axis=0)
        out[f"ifnet/boundary_{sigma}/occupancies"] = np.take(occupied.astype(np.uint8), order)
    for count in POINT_CLOUDS:
        surface, _ = signed.sampler.sample(count, rng=rng)
        out[f"ifnet/pointcloud_{count}"] = (surface / to_normalized).astype(np.float32)
    for resolution in VOXELS:
        out[f"ifnet/voxels_{resolution}"] = frame_voxels(signed, resolution, to_normalized).astype(np.uint8)
    return out


def grid_coords(points: np.ndarray) -> np.ndarray:
    """IF-Net's ``grid_coords``: x and z swapped, times 2 (``boundary_sampling.py``)."""
    coords = np.array(points, dtype=np.float64, copy=True)
    coords[:, 0], coords[:, 2] = points[:, 2], points[:, 0]
    return 2 * coords


def voxelized_point_cloud(points: np.ndarray, resolution: int = RESOLUTION) -> np.ndarray:
    """IF-Net's input grid: (R^3,) int8, 1 at the grid point nearest to each point, grid points
    ``linspace(-0.5, 0.5, R)`` in ``ij`` order (``create_grid_points_from_bounds``)."""
    # the nearest grid point per axis is the nearest in 3D on a regular grid
    index = np.clip(np.rint((np.asarray(points, dtype=np.float64) + 0.5) * (resolution - 1)), 0, resolution - 1)
    index = index.astype(np.int64)
    occupancies = np.zeros(resolution**3, dtype=np.int8)
    occupancies[(index[:, 0] * resolution + index[:, 1]) * resolution + index[:, 2]] = 1
    return occupancies


def boundary_specs(prefix: str, sigmas, samples: int, values) -> list[ArraySpec]:
    """The arrays of IF-Net's (and NDF's) boundary sampling under ``prefix``, in its frame: the
    normalization (``loc``, ``scale``), then per sigma ``samples`` points and their values, whose
    spec ``values(sigma, points_name)`` gives."""
    specs = [
        nan_spec(f"{prefix}/loc", (3,), "float64", role="loc"),
        nan_spec(f"{prefix}/scale", (), "float64", role="scale"),
    ]
    for sigma in sigmas:
        points = f"{prefix}/boundary_{sigma}/points"
        specs += [
            nan_spec(points, (samples, 3), role="points", parameters={"sigma": sigma}, frame=prefix),
            values(sigma, points),
        ]
    return specs


def _specs(parameters) -> list[ArraySpec]:
    frame = {"frame": "ifnet"}
    specs = boundary_specs(
        "ifnet",
        SIGMAS,
        SAMPLES,
        lambda sigma, points: ArraySpec(
            f"ifnet/boundary_{sigma}/occupancies", (SAMPLES,), "uint8", 0, role="occupancy", points=points, **frame
        ),
    )
    specs += [nan_spec(f"ifnet/pointcloud_{n}", (n, 3), role="surface", **frame) for n in POINT_CLOUDS]
    specs += [
        ArraySpec(f"ifnet/voxels_{r}", (r,) * 3, "uint8", 0, role="voxels", parameters={"box": [-0.5, 0.5]}, **frame)
        for r in VOXELS
    ]
    return specs


def write_boundary(shape: dict, folder, prefix: str, sigmas, values: str, dtype) -> int:
    """``boundary_<sigma>_samples.npz`` per sigma, as IF-Net's and NDF's ``boundary_sampling.py``
    write them: points, grid_coords and the values (``occupancies`` or ``df``)."""
    for sigma in sigmas:
        points = shape[f"{prefix}/boundary_{sigma}/points"].astype(np.float64)
        name = "occupancies" if values == "occupancies" else "df"
        np.savez(
            folder / f"boundary_{sigma}_samples.npz",
            points=points,
            grid_coords=grid_coords(points),
            **{name: shape[f"{prefix}/boundary_{sigma}/{values}"].astype(dtype)},
        )
    return len(sigmas)


def write_point_cloud(folder, cloud: np.ndarray, resolution: int) -> None:
    """``voxelized_point_cloud_<res>res_<n>points.npz`` (``voxelized_pointcloud_sampling.py``)."""
    cloud = cloud.astype(np.float64)
    np.savez(
        folder / f"voxelized_point_cloud_{resolution}res_{len(cloud)}points.npz",
        point_cloud=cloud,
        compressed_occupancies=np.packbits(voxelized_point_cloud(cloud, resolution)),
        bb_min=-0.5,
        bb_max=0.5,
        res=resolution,
    )


def write_split(tmp, listing: dict, root: str) -> int:
    """``split.npz``: split -> entries ``<root>/<category>/<id>`` (train, val and test always)."""
    splits = {
        split: np.array([f"{root}/{c or CATEGORY_FOLDER}/{i}" for c, ids in cats.items() for i in ids])
        for split, cats in listing.items()
    }
    for split in ("train", "val", "test"):
        splits.setdefault(split, np.array([], dtype=str))
    np.savez(tmp / "split.npz", **splits)
    return 1


def _write_shape(shape: dict, tmp, context: ExportContext) -> int:
    folder = shape_folder(tmp, shape)
    count = write_boundary(shape, folder, "ifnet", SIGMAS, "occupancies", bool)
    for n in POINT_CLOUDS:
        write_point_cloud(folder, shape[f"ifnet/pointcloud_{n}"], RESOLUTION)
    for r in VOXELS:  # voxelize.py: np.save(packbits(grid.reshape(-1)))
        np.save(folder / f"voxelization_{r}.npy", np.packbits(shape[f"ifnet/voxels_{r}"].astype(bool).reshape(-1)))
    return count + len(POINT_CLOUDS) + len(VOXELS)


def _sample(mesh, signed: SignedMesh, *, rng: np.random.Generator, parameters) -> dict:
    return sample_ifnet(signed, rng=rng)


RECIPE = Recipe(
    name="ifnet",
    stream=4,
    description="IF-Net's boundary samples (sigma 0.1 and 0.01, 100,000 each) with occupancies, point clouds of 300 "
    "and 3,000 points and 32^3 and 128^3 voxel grids for its inputs (ifnet/*)",
    specs=_specs,
    sample=_sample,
    sample_sets={
        f"ifnet_{sigma}": (f"ifnet/boundary_{sigma}/points", f"ifnet/boundary_{sigma}/occupancies") for sigma in SIGMAS
    },  # fmt: skip
    exporters=(
        Exporter(
            "ifnet",
            "IF-Net's data folder: <synset>/<id>/boundary_<sigma>_samples.npz, voxelized_point_cloud_128res_<n>points"
            ".npz, voxelization_<res>.npy, split.npz (entries /<synset>/<id>, under its data_path)",
            _write_shape,
            lambda tmp, listing, context: write_split(tmp, listing, ""),
        ),
    ),
)
