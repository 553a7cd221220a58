"""Where an evaluation writes its JSON, and the seed it draws contexts with unless told another:
shared by the 2D (:mod:`metasdf.evaluate`) and 3D (:mod:`metasdf.evaluate3d`) evaluations."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_SEED", "result_path"]

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
