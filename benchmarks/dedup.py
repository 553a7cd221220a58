"""How far apart the shape prints (``ledger/print``) of near-duplicates and of distinct objects are,
and what ``--dedup``'s threshold (``sdfkit.sources.ledger.NEAR``) finds.

Objects: ``make-shapes`` meshes of every category and defect. Near-duplicates of each, as they
arise when a collection is scraped: its vertices and faces reordered, every triangle split in four
(re-triangulated), re-exported as a GLB scene whose node moves and scales it (units), its vertices
rounded to 4 decimals (a lossy re-export), and its parts written as separate GLB nodes.
Distinct objects: every other make-shapes mesh (same category, other parameters included).

    OMP_NUM_THREADS=1 python benchmarks/dedup.py [--n 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdfkit.geometry.basics import shape_rng  # noqa: E402
from sdfkit.geometry.mesh import Mesh, load_mesh  # noqa: E402
from sdfkit.geometry.shapes import make_shapes  # noqa: E402
from sdfkit.recipes.deepsdf import signed_mesh  # noqa: E402
from sdfkit.sources.ledger import NEAR, NEAR_AREA, input_measures, near_duplicates, shape_print  # noqa: E402
from sdfkit.sources.shapenet import find_meshes  # noqa: E402


def variants(path: Path, folder: Path) -> dict[str, Path]:
    """Near-duplicate files of one mesh file."""
    import trimesh

    mesh = trimesh.load(path, process=False, force="mesh")
    rng = np.random.default_rng(0)
    out = {}
    order = rng.permutation(len(mesh.vertices))
    inverse = np.argsort(order)
    shuffled = trimesh.Trimesh(
        mesh.vertices[order], inverse[mesh.faces][rng.permutation(len(mesh.faces))], process=False
    )
    out["reordered"] = shuffled
    vertices, faces = trimesh.remesh.subdivide(mesh.vertices, mesh.faces)
    out["re-triangulated"] = trimesh.Trimesh(vertices, faces, process=False)
    out["rounded"] = trimesh.Trimesh(np.round(mesh.vertices, 4), mesh.faces, process=False)
    written = {}
    for name, item in out.items():
        written[name] = folder / f"{name}.obj"
        item.export(written[name])
    scene = trimesh.Scene()
    transform = np.eye(4)
    transform[:3, :3] *= 100.0  # centimetres
    transform[:3, 3] = [250.0, -40.0, 3.0]
    scene.add_geometry(mesh, transform=transform)
    written["glb, moved and scaled"] = folder / "moved.glb"
    scene.export(written["glb, moved and scaled"])
    parts = trimesh.Scene()
    for k, part in enumerate(mesh.split(only_watertight=False, repair=False)):  # repair would fill holes
        parts.add_geometry(part, node_name=f"part{k}")
    written["glb, parts as nodes"] = folder / "parts.glb"
    parts.export(written["glb, parts as nodes"])
    return written


def fingerprint(path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The shape print, and the input's area and principal moments (normalized frame), as the
    ledger has them."""
    mesh = load_mesh(path)
    signed = signed_mesh(Mesh(mesh.vertices, mesh.faces), rng=shape_rng(0, key))
    measures = input_measures(mesh, signed)
    return shape_print(signed), np.array([measures["ledger/area"], *measures["ledger/moments"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="make-shapes meshes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_shapes(Path(tmp) / "shapes", args.n, seed=11)
        _, meshes = find_meshes(Path(tmp) / "shapes")
        originals, copies = [], {}
        for k, (_, shape_id, path) in enumerate(meshes):
            originals.append(fingerprint(path, shape_id))
            folder = Path(tmp) / f"v{k}"
            folder.mkdir()
            for name, file in variants(path, folder).items():
                copies.setdefault(name, []).append(fingerprint(file, shape_id))
    prints, areas = np.array([p for p, _ in originals]), np.array([a for _, a in originals])
    rms = lambda a, b: np.sqrt(np.mean((a - b) ** 2, axis=-1))  # noqa: E731
    relative = lambda a, b: (np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))).max(axis=-1)  # noqa: E731
    print(f"{len(prints)} make-shapes meshes; thresholds: prints NEAR = {NEAR}, areas NEAR_AREA = {NEAR_AREA}")
    print(f"{'near-duplicate':<26}{'print median':>13}{'max':>9}{'measures max':>14}{'found':>8}")
    for name, found in copies.items():
        p, a = np.array([x for x, _ in found]), np.array([y for _, y in found])
        d, r = rms(prints, p), relative(areas, a)
        hit = (d <= NEAR) & (r <= NEAR_AREA)
        print(f"{name:<26}{np.median(d):>13.5f}{d.max():>9.5f}{r.max():>14.5f}{np.mean(hit):>8.1%}")
    pair = rms(prints[:, None], prints[None])[np.triu_indices(len(prints), 1)]
    area = relative(areas[:, None], areas[None])[np.triu_indices(len(prints), 1)]
    print(f"{'distinct objects':<26}{np.median(pair):>13.5f}{'min':>5} {pair.min():.5f}, measures apart at least "
          f"{area.min():.4f}; pairs within both thresholds: {int(((pair <= NEAR) & (area <= NEAR_AREA)).sum())}")  # fmt: skip
    every_print = np.concatenate([prints, *[np.array([x for x, _ in f]) for f in copies.values()]])
    every_area = np.concatenate([areas, *[np.array([y for _, y in f]) for f in copies.values()]])
    owner = np.tile(np.arange(len(prints)), 1 + len(copies))
    found = near_duplicates(every_print, np.arange(len(every_print)), measures=every_area)
    wrong = sum(owner[row] != owner[kept] for row, (kept, _) in found.items())
    expected = len(every_print) - len(prints)
    right = sum(owner[row] == owner[kept] for row, (kept, _) in found.items())
    print(
        f"grouping all {len(every_print)} objects: {right} of {expected} copies found ({right / expected:.1%}), "
        f"{wrong} put with another object ({wrong / len(every_print):.2%})"
    )


if __name__ == "__main__":
    main()
