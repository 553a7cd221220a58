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
from sdfkit.sources.ledger import NEAR, near_duplicates, shape_print  # noqa: E402
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
    for k, part in enumerate(mesh.split(only_watertight=False)):
        parts.add_geometry(part, node_name=f"part{k}")
    written["glb, parts as nodes"] = folder / "parts.glb"
    parts.export(written["glb, parts as nodes"])
    return written


def fingerprint(path: Path, key: str) -> np.ndarray:
    mesh = load_mesh(path)
    return shape_print(signed_mesh(Mesh(mesh.vertices, mesh.faces), rng=shape_rng(0, key)))


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
    originals = np.array(originals)
    rms = lambda a, b: np.sqrt(np.mean((a - b) ** 2, axis=-1))  # noqa: E731
    print(f"{len(originals)} make-shapes meshes; threshold NEAR = {NEAR}")
    print(f"{'near-duplicate':<26}{'median':>9}{'max':>9}{'found':>9}")
    for name, prints in copies.items():
        d = rms(originals, np.array(prints))
        print(f"{name:<26}{np.median(d):>9.5f}{d.max():>9.5f}{np.mean(d <= NEAR):>9.1%}")
    pair = rms(originals[:, None], originals[None])
    distinct = pair[np.triu_indices(len(originals), 1)]
    print(f"{'distinct objects':<26}{np.median(distinct):>9.5f}{'min':>5} {distinct.min():.5f}")
    everything = np.concatenate([originals, *[np.array(p) for p in copies.values()]])
    owner = np.tile(np.arange(len(originals)), 1 + len(copies))
    found = near_duplicates(everything, np.arange(len(everything)))
    wrong = sum(owner[row] != owner[kept] for row, (kept, _) in found.items())
    expected = len(everything) - len(originals)
    right = sum(owner[row] == owner[kept] for row, (kept, _) in found.items())
    print(
        f"grouping all {len(everything)} prints: {right} of {expected} copies found ({right / expected:.1%}), "
        f"{wrong} put with another object ({wrong / len(everything):.2%})"
    )


if __name__ == "__main__":
    main()
