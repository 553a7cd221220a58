"""Sign accuracy, distance error, surface fidelity and time of prepare-shapenet's per-mesh step,
against exact SDFs, per kind of input; optionally against another sdfkit checkout in the same run.

Inputs, written to a temporary folder as mesh files:

- ``make-shapes`` trees: chairs, tables and airplanes with every defect of
  ``sdfkit.geometry.shapes.DEFECTS`` (``overlap``: closed parts concatenated, not unioned), and CAD
  brackets with narrow bores (clean, flipped, soup, holes);
- built by hand: a seat with four legs and a back pushed into it, a cube with a rod through it,
  two overlapping spheres (each part closed, concatenated); a single open square; the chair with
  one unused vertex far away;
- constructions with their inside known (``sdfkit.geometry.constructions``): containers of
  single-sided sheets (air inside: cups, drawers, a lidless box of five separate sheets, a lamp
  shade and a pipe open at both ends), near-closed bodies (gapped sheet boxes, holed balls:
  solid), panels over a floor, closed boxes touching along an edge, a face or part of one, a pin flush in its bore, a
  bored block with one sliver face, an open spout pushed into a ball, a soup of 100 loose
  triangles, and the real soup.stl of tests/data/meshes;
- the real meshes of ``benchmarks/data/meshes`` and teapot.stl and suzanne.ply of
  tests/data/meshes, scored against libigl's exact winding number where ray parity agrees
  (``pip install libigl``; without it those rows are left out).

Each mesh runs through ``process_mesh`` (K = 250,000 samples, S = 30,000 surface points, the
store's exact values) in a subprocess that imports sdfkit from the checkout given, one thread.
Scores: correct signs for samples farther than 0.005 from the true surface, median |error| within
0.1 of it, surface samples within 1e-4 of the clean mesh (the union of the parts' meshes: the
outer surface as tessellated), negative samples (a sheet has none); for the constructions and
real meshes, surface samples that are not buried (the truth says outside on one side of them).

    python benchmarks/sign_accuracy.py                       # this checkout
    git worktree add /tmp/before HEAD~1
    python benchmarks/sign_accuracy.py --baseline /tmp/before  # and that one, same meshes
    python benchmarks/sign_accuracy.py --quick               # fewer shapes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_cases(folder: Path, quick: bool, seed: int = 7) -> dict:
    """Mesh files and their exact solids: {name: (path, solid or None, kind)}; ``seed``: the
    make-shapes meshes' and brackets'."""
    import trimesh

    from sdfkit.geometry import shapes

    cases = {}
    n = 18 if quick else 48
    tree = folder / "shapes"
    manifest = shapes.make_shapes(tree, n, seed=seed)
    for sid, info in manifest.items():
        solid = shapes.solid_from_json(info["parts"], info.get("holes"))
        cases[sid] = (tree / info["synset"] / sid / "models" / "model_normalized.obj", solid, info["defect"])
    brackets = folder / "brackets"
    defects = ("clean", "flipped", "soup", "holes")
    manifest = shapes.make_shapes(brackets, 4 if quick else 8, seed=seed, categories=("bracket",), defects=defects)
    for sid, info in manifest.items():
        solid = shapes.solid_from_json(info["parts"], info.get("holes"))
        cases[sid] = (
            brackets / info["synset"] / sid / "models" / "model_normalized.obj",
            solid,
            "bored-" + info["defect"],
        )

    hand = folder / "hand"
    hand.mkdir()
    rot = shapes.rotation
    built = {
        "seat-and-legs": shapes.Solid(
            (
                shapes.box((0.5, 0.45, 0.06), at=(0, 0, 0.5)),
                *[shapes.box((0.04, 0.04, 0.3), at=(sx * 0.4, sy * 0.35, 0.3)) for sx in (-1, 1) for sy in (-1, 1)],
                shapes.box((0.5, 0.04, 0.3), at=(0, 0.42, 0.8)),
            )
        ),
        "cube-and-rod": shapes.Solid(
            (shapes.box((0.3, 0.3, 0.3)), shapes.cylinder(0.08, 0.7, rotation=rot([1, 0, 0], 0.3)))
        ),
        "two-spheres": shapes.Solid((shapes.capsule(0.4, 0.0), shapes.capsule(0.3, 0.0, at=(0.45, 0.1, 0)))),
    }
    for name, solid in built.items():
        path = hand / f"{name}.obj"
        trimesh.util.concatenate([p.mesh(48) for p in solid.parts]).export(path)
        cases[name] = (path, solid, "overlap")
    square = hand / "open-square.obj"
    square.write_text("v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\nf 1 2 3\nf 1 3 4\n")
    cases["open-square"] = (square, None, "sheet")
    chair = built["seat-and-legs"].mesh(48)
    stray = hand / "union-with-stray-vertex.ply"  # PLY keeps unused vertices (trimesh's OBJ reader drops them)
    head = f"ply\nformat ascii 1.0\nelement vertex {len(chair.vertices) + 1}\n"
    head += "property double x\nproperty double y\nproperty double z\n"
    head += f"element face {len(chair.faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    lines = ["1e6 1e6 1e6"] + [f"{float(x)!r} {float(y)!r} {float(z)!r}" for x, y, z in chair.vertices]
    lines += [f"3 {a + 1} {b + 1} {c + 1}" for a, b, c in chair.faces]
    stray.write_text(head + "\n".join(lines) + "\n")
    cases["union-with-stray-vertex"] = (stray, built["seat-and-legs"], "unused-vertex")
    _constructions(folder, cases)
    _real_meshes(cases)
    return cases


def _constructions(folder: Path, cases: dict) -> None:
    """Containers, near-closed bodies, panels, touching parts and a soup, each with its inside by
    construction (sdfkit.geometry.constructions)."""
    import trimesh

    from sdfkit.geometry import constructions
    from sdfkit.geometry.mesh import load_mesh

    built = folder / "built"
    built.mkdir()
    table = {name: ("container", f) for name, f in constructions.CONTAINERS.items()}
    table |= {name: ("near-closed", f) for name, f in constructions.NEAR_CLOSED.items()}
    kinds = {
        "floor and panels": "panel",
        "holed ball, sheet inside": "inner-sheet",
        "boxes edge to edge": "touching",
        "boxes face to face": "touching",
        "box on a box": "touching",
        "pin flush in its bore": "touching",
        "bored block, one sliver": "sliver",
        "spout into a ball": "junction",
    }
    table |= {name: (kinds.get(name, "loose-soup"), f) for name, f in constructions.OTHERS.items()}
    for name, (kind, make) in table.items():
        vertices, faces, inside = make()
        path = built / f"{name.replace(' ', '-').replace(':', '-').replace(',', '').replace('%', '')}.ply"
        trimesh.Trimesh(vertices, faces, process=False).export(path)
        cases[name] = (path, None, kind, _Truth(inside, vertices, faces))
    # a real file of 100 random triangles: it encloses nothing
    soup = load_mesh(ROOT / "tests" / "data" / "meshes" / "soup.stl")
    nothing = _Truth(lambda p: np.zeros(len(p), dtype=bool), soup.vertices, soup.faces)
    cases["real:soup.stl"] = (ROOT / "tests" / "data" / "meshes" / "soup.stl", None, "loose-soup", nothing)


def _real_meshes(cases: dict) -> None:
    """The real meshes of benchmarks/data/meshes and the teapot (open tubes joining an open body)
    and Suzanne of tests/data/meshes, with libigl's exact winding number (> 1/2) as
    the truth where ray parity (open3d, three rays) agrees; libigl is a benchmark dependency only
    (pip install libigl), and without it these rows are left out."""
    try:
        import igl
    except ImportError:
        print("(libigl is not installed: pip install libigl for the real-mesh rows)", file=sys.stderr)
        return
    from sdfkit.geometry.mesh import load_mesh

    paths = sorted((ROOT / "benchmarks" / "data" / "meshes").iterdir())
    paths += [ROOT / "tests" / "data" / "meshes" / name for name in ("teapot.stl", "suzanne.ply")]
    for path in paths:
        if path.suffix.lower() not in (".obj", ".ply", ".stl", ".glb", ".off"):
            continue
        mesh = load_mesh(path)

        def inside(points, v=mesh.vertices, f=mesh.faces):
            from sdfkit.geometry import raycast

            winding = igl.winding_number(np.asarray(v, np.float64), np.asarray(f, np.int64), points) > 0.5
            parity = raycast.occupancy(raycast.scene(v, f), points)
            return np.where(winding == parity, winding, -1)

        cases[f"real:{path.name}"] = (path, None, "real-mesh", _Truth(inside, mesh.vertices, mesh.faces))


class _Truth:
    """Inside or not (1, 0; -1 where unknown) at raw points, and the input faces, to score points
    beyond 0.005 (normalized) of every face."""

    def __init__(self, inside, vertices, faces):
        self.inside, self.vertices, self.faces = inside, np.asarray(vertices), np.asarray(faces)


def worker(root: str, listing: str, out: str) -> None:
    """In a subprocess: import sdfkit from ``root`` and run process_mesh on every listed mesh."""
    import time

    sys.path.insert(0, root)
    from sdfkit.sources.shapenet import MeshJob, process_mesh

    results = {}
    for name, path in json.loads(Path(listing).read_text()).items():
        start = time.perf_counter()
        try:
            row = process_mesh(MeshJob(name, path), samples=250_000, surface_samples=30_000, seed=0, rays=32)
        except Exception as exc:  # a failure is a result too
            results[name] = {"error": str(exc)}
            continue
        seconds = time.perf_counter() - start
        np.savez(Path(out) / f"{name}.npz", **{k.replace("/", "_"): np.asarray(v) for k, v in row.items()})
        results[name] = {"seconds": seconds}
    (Path(out) / "results.json").write_text(json.dumps(results))


def run(root: Path, cases: dict, folder: Path) -> dict:
    out = folder / f"out-{abs(hash(str(root)))}"
    out.mkdir()
    listing = folder / "listing.json"
    listing.write_text(json.dumps({k: str(v[0]) for k, v in cases.items()}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, __file__, "--worker", str(root), str(listing), str(out)], check=True, env=env, cwd=folder
    )
    results = json.loads((out / "results.json").read_text())
    scored = {}
    for name, (_, solid, kind, *rest) in cases.items():
        r = results[name]
        if "error" in r:
            scored[name] = {"kind": kind, "failure": r["error"]}
            continue
        z = np.load(out / f"{name}.npz")
        values = z["sdf_values"].astype(np.float64)
        row = {"kind": kind, "seconds": r["seconds"], "negative": int(np.count_nonzero(values < 0))}
        if solid is not None:
            offset, scale = z["norm_offset"].astype(np.float64), float(z["norm_scale"])
            truth = solid.sdf(z["sdf_points"].astype(np.float64) / scale - offset) * scale
            far, near = np.abs(truth) > 0.005, np.abs(truth) < 0.1
            surface = z["surface_points"].astype(np.float64) / scale - offset
            row["accuracy"] = 100 * float(np.mean((values[far] < 0) == (truth[far] < 0)))
            row["error"] = float(np.median(np.abs(values[near] - truth[near])))
            row["on_surface"] = 100 * float(np.mean(_distance(solid.mesh(48), surface) * scale < 1e-4))
        elif rest:  # truth by construction or by winding number, at raw coordinates
            from sdfkit.geometry.sign import unsigned_distance

            truth = rest[0]
            offset, scale = z["norm_offset"].astype(np.float64), float(z["norm_scale"])
            raw = z["sdf_points"].astype(np.float64) / scale - offset
            pick = np.random.default_rng(0).choice(len(raw), size=min(len(raw), 50_000), replace=False)
            raw, picked = raw[pick], values[pick]
            inside = np.asarray(truth.inside(raw)).astype(np.int64)
            far = (unsigned_distance(truth.vertices, truth.faces, raw) * scale > 0.005) & (inside >= 0)
            row["accuracy"] = 100 * float(np.mean((picked[far] < 0) == (inside[far] == 1)))
            row["on_outer"] = _on_outer(truth, z, scale, offset)
        scored[name] = row
    return scored


def _on_outer(truth, z, scale, offset, step=0.0005, count=20_000) -> float:
    """% of surface samples on the outer surface: not buried, that is not inside on both sides
    (the truth ``step`` off the sample along its normal, normalized frame, and against it), among
    those whose truth is known on both sides."""
    points = z["surface_points"][:count].astype(np.float64)
    normals = z["surface_normals"][:count].astype(np.float64)
    front = truth.inside((points + step * normals) / scale - offset)
    back = truth.inside((points - step * normals) / scale - offset)
    front, back = np.asarray(front).astype(np.int64), np.asarray(back).astype(np.int64)
    known = (front >= 0) & (back >= 0)
    return 100 * float(np.mean(~((front == 1) & (back == 1))[known])) if known.any() else float("nan")


def _distance(mesh, points):
    """Distance (n,) of points to a mesh: open3d finds the closest triangle, the distance to it is
    computed again in float64, and by brute force where that is above 1e-6 (open3d's float32
    search picks a wrong triangle now and then on long thin ones)."""
    import open3d as o3d
    import trimesh

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)), o3d.core.Tensor(np.asarray(mesh.faces, np.uint32))
    )
    face = scene.compute_closest_points(o3d.core.Tensor(np.asarray(points, np.float32)))["primitive_ids"].numpy()
    triangles = np.asarray(mesh.triangles, dtype=np.float64)
    distance = np.linalg.norm(
        trimesh.triangles.closest_point(triangles[face.astype(np.int64)], points) - points, axis=1
    )
    # where open3d picked a wrong triangle: brute force over all of them
    for k in np.nonzero(distance > 1e-6)[0][:2000]:
        query = np.repeat(points[k : k + 1], len(triangles), axis=0)
        distance[k] = np.linalg.norm(trimesh.triangles.closest_point(triangles, query) - query, axis=1).min()
    return distance


def table(runs: dict) -> None:
    names = list(runs)
    by_kind = defaultdict(list)
    for case in runs[names[0]]:
        by_kind[runs[names[0]][case]["kind"]].append(case)
    head = f"{'kind':<16}{'n':>4}"
    for n in names:
        head += f" | {n + ' min %':>14}{'err':>9}{'surf %':>8}{'neg':>8}{'med s':>7}"
    print(head)
    for kind, cases in by_kind.items():
        line = f"{kind:<16}{len(cases):>4}"
        for n in names:
            rows = [runs[n][c] for c in cases]
            ok = [r for r in rows if "failure" not in r]
            failed = len(rows) - len(ok)
            acc = [r["accuracy"] for r in ok if "accuracy" in r]
            err = [r["error"] for r in ok if "error" in r]
            surf = [r["on_surface"] for r in ok if "on_surface" in r]
            neg = sum(r["negative"] for r in ok)
            secs = np.median([r["seconds"] for r in ok]) if ok else float("nan")
            a = f"{min(acc):.3f}" if acc else "-"
            e = f"{max(err):.5f}" if err else "-"
            s = f"{min(surf):.2f}" if surf else "-"
            line += f" | {a + (f' ({failed} failed)' if failed else ''):>14}{e:>9}{s:>8}{neg:>8}{secs:>7.2f}"
        print(line)
    if len(names) == 2:
        a, b = names
        ratio = [
            runs[a][c]["seconds"] / runs[b][c]["seconds"]
            for c in runs[a]
            if "seconds" in runs[a][c] and "seconds" in runs[b][c]
        ]
        ta = np.median([r["seconds"] for r in runs[a].values() if "seconds" in r])
        tb = np.median([r["seconds"] for r in runs[b].values() if "seconds" in r])
        print(
            f"\nmedian s per mesh: {a} {ta:.3f}, {b} {tb:.3f} (ratio of medians {ta / tb:.2f}; median per-mesh ratio {np.median(ratio):.2f})"
        )
    detail = [c for c in runs[names[0]] if runs[names[0]][c]["kind"] in _DETAILED]
    if detail:
        print(f"\n{'case':<34}" + "".join(f"{n + ' %':>14}{'outer %':>9}{'neg':>9}" for n in names))
        for case in detail:
            cells = ""
            for n in names:
                r = runs[n][case]
                outer = r.get("on_outer", float("nan"))
                cells += f"{r.get('accuracy', float('nan')):>14.3f}{outer:>9.2f}{r.get('negative', -1):>9}"
            print(f"{case:<34}{cells}")
    print("min % = worst shape's correct signs beyond 0.005; err = worst median |error| within 0.1;")
    print("surf % = worst share of surface samples within 1e-4 of the clean union mesh; neg = negative samples in all;")
    print(
        "outer % = surface samples not buried (the truth 0.0005 off them along their normal, SURE_DISTANCE: not inside on both sides)"
    )


_DETAILED = (
    "container",
    "near-closed",
    "panel",
    "inner-sheet",
    "touching",
    "sliver",
    "junction",
    "loose-soup",
    "real-mesh",
)
"""Kinds whose cases the table also lists one by one."""


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another sdfkit checkout to run on the same meshes")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = write_cases(folder, args.quick)
        runs = {"this": run(ROOT, cases, folder)}
        if args.baseline:
            if not (args.baseline / "sdfkit" / "__init__.py").is_file():
                sys.exit(f"{args.baseline}: not an sdfkit checkout (no sdfkit/__init__.py)")
            runs["baseline"] = run(args.baseline.resolve(), cases, folder)
        table(runs)


if __name__ == "__main__":
    main()
