"""Where an evaluation writes its JSON, and the seed it draws contexts with unless told another:
shared by the 2D (:mod:`metasdf.evaluate`) and 3D (:mod:`metasdf.evaluate3d`) evaluations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

__all__ = ["DEFAULT_SEED", "result_path", "write_result"]

DEFAULT_SEED = 1234
"""The seed of the contexts an evaluation draws unless told another."""


def result_path(
    run_dir,
    split: str,
    *,
    context: str = "sdfkit",
    samples: str = "train",
    limit: int | None = None,
    output=None,
    seed: int = DEFAULT_SEED,
) -> Path:
    """Where an evaluation's JSON goes: ``output`` if given, else
    RUN_DIR/eval-<split>[-limit<N>][-reference-context][-test-samples][-seed<N>].json (the seed
    only when it is not :data:`DEFAULT_SEED`)."""
    if output is not None:
        return Path(output)
    name = (
        split
        + (f"-limit{limit}" if limit is not None else "")
        + ("-reference-context" if context == "reference" else "")
        + ("-test-samples" if samples == "test" else "")
        + (f"-seed{seed}" if seed != DEFAULT_SEED else "")
    )
    return Path(run_dir) / f"eval-{name}.json"


def write_result(path: Path, result: dict, figures: Callable[[Path], list[str]] | None = None) -> dict:
    """Write an evaluation's JSON to ``path``; then, with ``figures`` (called with the path
    without its suffix, returning the PNGs it wrote), draw them and write the JSON again with
    their paths. The metrics are on disk first, whatever drawing does (a missing renderer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    if figures is not None:
        result["figures"] = figures(path.with_suffix(""))
        path.write_text(json.dumps(result, indent=2))
    return result
