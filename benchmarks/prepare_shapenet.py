"""sdfkit's mesh pipeline against mesh-to-sdf, on the same meshes and query points, in one run.

Meshes: a union of a torus, a capsule and a box (exact SDF known) at two tessellations (about 10k
and 150k faces), each with every defect of ``sdfkit.geometry.shapes.DEFECTS`` (``overlap``: its parts
concatenated, passing through each other); a CAD bracket with narrow bores (clean, soup, holes);
and 12 real meshes shipped in benchmarks/data/meshes and tests/data/meshes (no exact SDF: only
times, and how often the two tools agree).

Per mesh, both tools sign the same 250,000 DeepSDF-style query points (near the clean surface,
3/50 uniform): sdfkit with its whole per-mesh pipeline (``sample_mesh`` on the damaged mesh: outer
surface, sampling, signs; the signs at the shared queries come from the same functions) and
mesh-to-sdf with its defaults (100 scans, normal-vote sign). Accuracy = correct signs among
queries farther than 0.005 from the true surface; "dist err" = median |error| within 0.1 of it.

    pip install --no-deps mesh-to-sdf     # needs pyrender, scikit-learn; headless via OSMesa
    python benchmarks/prepare_shapenet.py              # everything (about 15 minutes)
    python benchmarks/prepare_shapenet.py --quick      # 3 defects, small meshes, 4 real meshes
    python benchmarks/prepare_shapenet.py --one-core   # both tools pinned to one core
    python benchmarks/prepare_shapenet.py --throughput 96   # + prepare-shapenet on 96 make-shapes meshes
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sdfkit.geometry import shapes  # noqa: E402
from sdfkit.geometry.mesh import Mesh, load_mesh, normalization, sample_surface  # noqa: E402
from sdfkit.geometry.sign import outer_surface, signed_distance  # noqa: E402
from sdfkit.recipes.deepsdf import near_surface_points  # noqa: E402

# shipped with the repository (benchmarks/data/meshes/README.md: sources and licences)
REAL = [
    ROOT / "benchmarks/data/meshes" / name
    for name in (
        "bunny.ply",
        "cycloidal.ply",
        "Duck.glb",
        "fandisk.obj",
        "featuretype.STL",
        "fuze.obj",
        "plate_holes.STL",
        "quadknot.obj",
        "rabbit.obj",
        "multibody.stl",
    )
] + [ROOT / "tests/data/meshes/suzanne.ply", ROOT / "tests/data/meshes/teapot.stl"]


def sdfkit_signs(vertices, faces, queries, rng):
    """sdfkit's pipeline on one normalized mesh: outer surface, then signed distances."""
    outer = outer_surface(vertices, faces, rng=rng)
    # the surface and query sampling of sample_mesh, timed with the rest
    sample_surface(outer.vertices, outer.faces, 30_000, rng=rng)
    return signed_distance(outer, queries, rng=rng)


def mesh_to_sdf_signs(vertices, faces, queries):
    import mesh_to_sdf
    import trimesh

    return mesh_to_sdf.mesh_to_sdf(trimesh.Trimesh(vertices, faces, process=False), queries)


def score(values, truth):
    if truth is None:
        return None, None
    far = np.abs(truth) > 0.005
    near = np.abs(truth) < 0.1
    return 100 * np.mean((values[far] < 0) == (truth[far] < 0)), float(np.median(np.abs(values[near] - truth[near])))


def cases(quick: bool):
    solid = shapes.Solid(
        (
            shapes.torus(0.5, 0.15, at=(-0.3, 0, 0)),
            shapes.capsule(0.15, 0.5, at=(0.4, 0, 0)),
            shapes.box((0.3, 0.2, 0.25), at=(0.1, 0.3, 0.2)),
        )
    )
    defects = ("holes", "flipped", "combo") if quick else shapes.DEFECTS
    for detail in (64,) if quick else (64, 256):
        clean = solid.mesh(detail)
        for defect in defects:
            broken = shapes.damage(clean, defect, solid=solid, rng=np.random.default_rng(1))
            yield f"union-{len(clean.faces) // 1000}k-{defect}", Mesh(broken.vertices, broken.faces), clean, solid
    # meshes built from parts: a CAD bracket with narrow bores (watertight), its soup
    bracket = shapes.bracket(np.random.default_rng(1))
    clean = bracket.mesh(64)
    for defect in ("clean",) if quick else ("clean", "soup", "holes"):
        broken = shapes.damage(clean, defect, solid=bracket, rng=np.random.default_rng(1))
        yield f"bracket-{defect}", Mesh(broken.vertices, broken.faces), clean, bracket
    for path in REAL[:4] if quick else REAL:
        if not path.is_file():
            sys.exit(f"{path}: a benchmark mesh is missing; restore it from git (git checkout -- {path.parent})")
        yield path.name, load_mesh(path), None, None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one-core", action="store_true", help="pin this process (both tools) to one core")
    parser.add_argument("--samples", type=int, default=250_000)
    parser.add_argument(
        "--throughput", type=int, default=0, metavar="N", help="also time prepare-shapenet on N make-shapes meshes"
    )
    args = parser.parse_args()
    if args.one_core:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    rows = []
    header = f"{'mesh':<26}{'faces':>8}{'sdfkit s':>10}{'m2s s':>8}{'ratio':>7}{'sdfkit %':>10}{'m2s %':>8}{'sdfkit err':>11}{'m2s err':>9}{'agree %':>9}"
    print(header, flush=True)
    for name, mesh, clean, solid in cases(args.quick):
        rng = np.random.default_rng(0)
        offset, scale = normalization(mesh)
        vertices = (mesh.vertices + offset) * scale
        reference = clean if clean is not None else mesh
        base, _ = sample_surface(
            (reference.vertices + offset) * scale, np.asarray(reference.faces), args.samples, rng=rng
        )
        queries = near_surface_points(base, args.samples, rng=rng)
        truth = None if solid is None else solid.sdf(queries / scale - offset) * scale
        start = time.perf_counter()
        ours = sdfkit_signs(vertices, mesh.faces, queries, rng)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = mesh_to_sdf_signs(vertices, mesh.faces, queries)
        theirs_s = time.perf_counter() - start
        (a, ea), (b, eb) = score(ours, truth), score(theirs, truth)
        agree = 100 * np.mean((ours < 0) == (theirs < 0))
        rows.append((name, ours_s, theirs_s, a, b))
        fmt = lambda v, spec: format(v, spec) if v is not None else format("-", spec.rstrip(".24f")[:3])  # noqa: E731
        print(
            f"{name:<26}{len(mesh.faces):>8}{ours_s:>10.2f}{theirs_s:>8.1f}{theirs_s / ours_s:>7.1f}"
            f"{fmt(a, '>10.2f')}{fmt(b, '>8.2f')}{fmt(ea, '>11.4f')}{fmt(eb, '>9.4f')}{agree:>9.2f}",
            flush=True,
        )

    ours_t, theirs_t = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    print(
        f"\nmedian seconds per mesh: sdfkit {np.median(ours_t):.2f}, mesh-to-sdf {np.median(theirs_t):.1f}; "
        f"median speed ratio {np.median(theirs_t / ours_t):.1f}x (min {np.min(theirs_t / ours_t):.1f}x)"
    )
    scored = [r for r in rows if r[3] is not None]
    if scored:
        print(
            f"worst sign accuracy beyond 0.005: sdfkit {min(r[3] for r in scored):.2f}%, mesh-to-sdf {min(r[4] for r in scored):.2f}%"
        )

    if args.throughput:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "shapes"
            shapes.make_shapes(tree, args.throughput, seed=1)
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "cli.main", "prepare-shapenet", str(tree), "-o", str(Path(tmp) / "s.zarr")],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            seconds = time.perf_counter() - start
        print(
            f"prepare-shapenet, {args.throughput} make-shapes meshes, K=250,000, S=30,000, all cores: {seconds:.1f} s "
            f"({seconds / args.throughput:.2f} s per mesh) -> 4,000 meshes in about {4000 * seconds / args.throughput / 60:.0f} minutes"
        )


if __name__ == "__main__":
    main()
