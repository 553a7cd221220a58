"""DeepSDF's test samples (``--recipe deepsdf-test``), as ``PreprocessMesh -t`` writes them for
its evaluation: the near-surface law of training with the wider variance 0.05 (half of the near
points) and 0.0005, normalized frame, sdfkit's signs.
"""

from __future__ import annotations

import numpy as np

from sdfkit.recipes.base import Recipe, nan_spec
from sdfkit.recipes.deepsdf import SignedMesh, signed_queries

__all__ = ["RECIPE", "TEST_VARIANCES", "TEST_SAMPLES", "sample_test"]

TEST_VARIANCES = (0.05, 0.0005)
"""DeepSDF's test data (``PreprocessMesh -t``: variance 0.05, the second one variance / 100)."""
TEST_SAMPLES = 250_000
"""DeepSDF's test data: 250,000 samples per shape (47/50 near the surface, as in training: its
``num_samp_near_surf`` is computed from the fixed 47/50 whatever the test ratio it sets)."""


def sample_test(signed: SignedMesh, *, count: int = TEST_SAMPLES, rng: np.random.Generator):
    """``count`` query points and their signed distances: points (count, 3) and values (count,)
    float32, normalized frame, shuffled."""
    queries, values = signed_queries(signed, count, rng=rng, variances=TEST_VARIANCES)
    return queries.astype(np.float32), values.astype(np.float32)


def _specs(parameters) -> list:
    law = {"variances": list(TEST_VARIANCES), "near_share": 47 / 50, "uniform_box": [-1.0, 1.0]}
    return [
        nan_spec("sdf_test/points", (TEST_SAMPLES, 3), role="points", parameters=law),
        nan_spec("sdf_test/values", (TEST_SAMPLES,), role="sdf", points="sdf_test/points"),
    ]


def _sample(mesh, signed: SignedMesh, *, rng: np.random.Generator, parameters) -> dict:
    points, values = sample_test(signed, rng=rng)
    return {"sdf_test/points": points, "sdf_test/values": values}


RECIPE = Recipe(
    name="deepsdf-test",
    stream=2,
    description="DeepSDF's test samples (variance 0.05 and 0.0005, 250,000 per shape): sdf_test/points, sdf_test/values",
    specs=_specs,
    sample=_sample,
    sample_sets={"sdf_test": ("sdf_test/points", "sdf_test/values")},
)
