"""Watertight meshes from broken ones: sdfkit against point-cloud-utils and mesh2sdf, same meshes.

Meshes: ``make-shapes`` shapes (chairs, tables, airplanes in turn, seed 3; ``--n 27``, the
default, gives each of the nine defects to one shape of each category). Each
tool gets the damaged mesh in sdfkit's normalized frame (the unit ball; mesh2sdf needs [-1, 1]);
every output is written to an OBJ file and judged as read back: watertight and manifold by trimesh
(watertight, consistent winding) and by open3d (edge and vertex manifold, orientable). Distances
are point to surface, both ways, from 30,000 area-weighted points to every face of the other mesh
(open3d's exact closest points), against the undamaged mesh the damaged copy was cut from, in
cells of a 256 grid over the shape's longest side (sdfkit's cell). Time: median seconds per mesh,
one thread, everything per mesh included (sdfkit: load, outer surface, level set).

Baselines, as a user would call them: point-cloud-utils ``make_mesh_watertight`` (ManifoldPlus'
octree, its default 20,000 leaves, and 50,000) and mesh2sdf ``compute(..., size=256, fix=True,
level=2/256, return_mesh=True)`` (its recommended level). Install them with
``pip install point-cloud-utils mesh2sdf``; a missing one is skipped.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/watertight.py [--n 27] [--resolution 256] [--skip-mesh2sdf]

``--hard`` runs ``sdfkit watertight`` itself (the command, one worker) on what real files break
instead: the constructions of ``sdfkit.geometry.constructions`` (containers of single-sided
sheets, near-closed bodies, panels, touching parts, a sliver, a spout, a soup) and the real meshes
of benchmarks/data/meshes and tests/data/meshes, and prints per mesh its input's open edges, the
checks of the file it wrote as trimesh and open3d read it back, and the Hausdorff distance and the
lost area against the input's outer surface (the command's own report):

    OMP_NUM_THREADS=1 python benchmarks/watertight.py --hard
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdfkit.builders.watertight import CHECKS, WatertightConfig, mesh_checks, watertight_mesh  # noqa: E402
from sdfkit.geometry import shapes  # noqa: E402
from sdfkit.geometry.basics import shape_rng  # noqa: E402
from sdfkit.geometry.mesh import load_mesh, sample_surface  # noqa: E402
from sdfkit.geometry.sign import unsigned_distance  # noqa: E402
from sdfkit.recipes.deepsdf import signed_mesh  # noqa: E402
from sdfkit.sources.shapenet import find_meshes  # noqa: E402


def judge(vertices, faces, clean_vertices, clean_faces, cell, folder: Path) -> dict:
    import trimesh

    path = folder / "out.obj"
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    checks = mesh_checks(path)
    rng = np.random.default_rng(0)
    out_points, _ = sample_surface(vertices, faces, 30_000, rng=rng)
    clean_points, _ = sample_surface(clean_vertices, clean_faces, 30_000, rng=rng)
    a = unsigned_distance(clean_vertices, clean_faces, out_points)
    b = unsigned_distance(vertices, faces, clean_points)
    return {
        "both": all(checks[c] for c in CHECKS),
        "faces": checks["faces"],
        "mean": float((a.mean() + b.mean()) / 2 / cell),
        "hausdorff": float(max(a.max(), b.max()) / cell),
    }


def hard(resolution: int) -> None:
    """``sdfkit watertight`` on the constructions and real meshes (see the module's text)."""
    import shutil
    import subprocess

    import trimesh

    from sdfkit.geometry import constructions

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        table = {**constructions.CONTAINERS, **constructions.NEAR_CLOSED, **constructions.OTHERS}
        for name, make in table.items():
            vertices, faces, _ = make()
            stem = name.replace(" ", "-").replace(":", "-").replace(",", "").replace("%", "")
            trimesh.Trimesh(vertices, faces, process=False).export(folder / f"{stem}.ply")
        real = sorted((root / "benchmarks" / "data" / "meshes").glob("*.*"))
        real += [root / "tests" / "data" / "meshes" / n for n in ("teapot.stl", "suzanne.ply", "soup.stl")]
        for path in real:
            if path.suffix.lower() in (".obj", ".ply", ".stl", ".glb"):
                shutil.copy(path, folder / path.name)
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "cli.main", "watertight", str(folder), "-o", str(out), "--workers", "1"]
        command += ["--resolution", str(resolution)]
        subprocess.run(command, check=True, cwd=root, stdout=subprocess.DEVNULL)
        rows = [json.loads(line) for line in (Path(tmp) / "out.report.jsonl").read_text().splitlines()]
        print(
            f"sdfkit watertight --resolution {resolution}: {len(rows)} meshes; distances in cells, to the input's outer surface"
        )
        print(
            f"{'mesh':<34}{'open edges':>11}{'closed, both':>14}{'Hausdorff':>11}{'resolvable':>11}"
            f"{'lost %':>8}{'narrow %':>10}{'s':>7}"
        )
        for row in sorted(rows, key=lambda r: r["id"]):
            if not row.get("ok"):
                print(f"{row['id']:<34} failed: {row.get('error', '')[:60]}")
                continue
            mesh = load_mesh(row["input"])
            merged = trimesh.Trimesh(mesh.vertices, mesh.faces)  # merges coincident vertices
            _, counts = np.unique(np.sort(merged.edges, axis=1), axis=0, return_counts=True)
            closed = all(bool(row[c]) for c in CHECKS)
            print(
                f"{row['id']:<34}{int(np.sum(counts == 1)):>11}{'yes' if closed else 'NO':>14}"
                f"{row['hausdorff'] / row['cell']:>11.2f}{row['hausdorff_resolvable'] / row['cell']:>11.2f}"
                f"{100 * row['thin_lost']:>8.2f}{100 * row['narrow_closed']:>10.3f}{row['seconds']:>7.1f}"
            )
        print("open edges: edges of one face in the input (holes, rims, sheets); lost %: input outer-surface area")
        print("farther than a cell from the output; narrow %: the part of it on walls of clearances narrower than")
        print("a cell, which the grid closes; resolvable: Hausdorff leaving those out")


def baselines(resolution: int, skip_mesh2sdf: bool) -> dict:
    """The tools to compare, by name: sdfkit (None: run by :func:`measure_all` itself), then the
    installed baselines as a user would call them."""
    tools = {"sdfkit": None}
    try:
        import point_cloud_utils as pcu

        tools["pcu 20k leaves"] = lambda v, f: pcu.make_mesh_watertight(v, f, resolution=20_000, seed=0)
        tools["pcu 50k leaves"] = lambda v, f: pcu.make_mesh_watertight(v, f, resolution=50_000, seed=0)
    except ImportError:
        print("point-cloud-utils not installed: skipped (pip install point-cloud-utils)")
    if not skip_mesh2sdf:
        try:
            import mesh2sdf

            def run_mesh2sdf(v, f):
                _, mesh = mesh2sdf.compute(v, f, size=resolution, fix=True, level=2 / resolution, return_mesh=True)
                return np.asarray(mesh.vertices), np.asarray(mesh.faces)

            tools["mesh2sdf fix=True"] = run_mesh2sdf
        except ImportError:
            print("mesh2sdf not installed: skipped (pip install mesh2sdf)")
    return tools


def measure_all(tools: dict, n: int, resolution: int) -> tuple[list[dict], int]:
    """Every tool on ``n`` make-shapes meshes (seed 3), judged against the undamaged meshes:
    (rows, meshes)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "shapes"
        shapes.make_shapes(root, n, seed=3)
        info = json.loads((root / "shapes.json").read_text())
        _, meshes = find_meshes(root)
        config = WatertightConfig(resolution=resolution)
        for _, shape_id, path in meshes:
            clean = shapes.solid_from_json(info[shape_id]["parts"], info[shape_id].get("holes")).mesh()
            start = time.perf_counter()
            mesh = load_mesh(path)
            signed = signed_mesh(mesh, rng=shape_rng(0, shape_id))
            vertices, faces, cell, _ = watertight_mesh(signed, config, rng=shape_rng(0, shape_id, 6))
            seconds = time.perf_counter() - start
            clean_v = (np.asarray(clean.vertices) + signed.offset) * signed.scale
            clean_f = np.asarray(clean.faces)
            row = {"shape": shape_id, "defect": info[shape_id]["defect"], "tool": "sdfkit", "seconds": seconds}
            rows.append(row | judge(vertices, faces, clean_v, clean_f, cell, Path(tmp)))
            damaged = (mesh.vertices + signed.offset) * signed.scale
            for name, tool in tools.items():
                if tool is None:
                    continue
                start = time.perf_counter()
                try:
                    v, f = tool(damaged, mesh.faces)
                except Exception as exc:  # a baseline that fails on a mesh: recorded, the run goes on
                    rows.append({"shape": shape_id, "defect": row["defect"], "tool": name, "error": str(exc)[:80]})
                    continue
                seconds = time.perf_counter() - start
                result = {"shape": shape_id, "defect": row["defect"], "tool": name, "seconds": seconds}
                rows.append(
                    result
                    | judge(np.asarray(v, np.float64), np.asarray(f, np.int64), clean_v, clean_f, cell, Path(tmp))
                )
            print(".", end="", flush=True)
    print()
    return rows, len(meshes)


def print_table(rows: list[dict], tools: dict, meshes: int, resolution: int) -> None:
    base = np.median([r["seconds"] for r in rows if r["tool"] == "sdfkit"])
    print(f"{meshes} make-shapes meshes, resolution {resolution}, one thread; distances in cells of sdfkit's grid")
    header = f"{'tool':<20}{'median s':>10}{'x sdfkit':>10}{'closed, both':>14}{'mean':>8}{'worst mean':>12}{'Hausdorff':>11}{'worst H.':>10}{'faces':>10}"
    print(header)
    for name in tools:
        ok = [r for r in rows if r["tool"] == name and "error" not in r]
        if not ok:
            continue
        seconds = np.median([r["seconds"] for r in ok])
        means, hausdorff = [r["mean"] for r in ok], [r["hausdorff"] for r in ok]
        closed = sum(r["both"] for r in ok)
        count = len([r for r in rows if r["tool"] == name])
        print(
            f"{name:<20}{seconds:>10.2f}{seconds / base:>10.2f}{f'{closed}/{count}':>14}{np.median(means):>8.3f}"
            f"{max(means):>12.3f}{np.median(hausdorff):>11.2f}{max(hausdorff):>10.2f}{int(np.median([r['faces'] for r in ok])):>10}"
        )
    print("\nsdfkit per defect, worst of its meshes (cells):")
    for defect in dict.fromkeys(r["defect"] for r in rows):
        ours = [r for r in rows if r["tool"] == "sdfkit" and r["defect"] == defect]
        print(
            f"  {defect:<14}Hausdorff {max(r['hausdorff'] for r in ours):>6.2f}   mean {max(r['mean'] for r in ours):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--n", type=int, default=27, help="make-shapes shapes (27: every defect on every category)")
    parser.add_argument("--skip-mesh2sdf", action="store_true", help="mesh2sdf takes minutes per mesh at 256")
    parser.add_argument("--json", default=None, help="Also write every row to this file.")
    parser.add_argument("--hard", action="store_true", help="constructions and real meshes through sdfkit watertight")
    args = parser.parse_args()
    if args.hard:
        hard(args.resolution)
        return
    tools = baselines(args.resolution, args.skip_mesh2sdf)
    rows, meshes = measure_all(tools, args.n, args.resolution)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print_table(rows, tools, meshes, args.resolution)


if __name__ == "__main__":
    main()
