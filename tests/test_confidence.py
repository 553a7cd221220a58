"""Per-sample sign confidence (``prepare-shapenet --confidence``): the rule that signed each
sample and how sure it is; the unsure ones hold the wrong signs (benchmarks/sign_confidence.py
measures it on every kind of input)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from test_cli import sdfkit

from sdfkit.geometry.basics import shape_rng
from sdfkit.geometry.constructions import construction
from sdfkit.geometry.mesh import Mesh
from sdfkit.geometry.shapes import make_shapes
from sdfkit.geometry.sign import (
    RULE_CLOSED,
    RULE_OUTSIDE_BOX,
    RULE_SHEET,
    RULE_SIDE,
    RULE_WINDING,
    sign_confidence,
    unsigned_distance,
)
from sdfkit.recipes.deepsdf import signed_mesh, signed_queries


def test_confidence_of_each_rule_by_hand():
    rule = np.array([RULE_CLOSED, RULE_OUTSIDE_BOX, RULE_SIDE, RULE_SHEET, RULE_WINDING, RULE_WINDING, RULE_CLOSED])
    margin = np.array([1.0, 1.0, 0.8, 1.0, 0.4, 1.0, 1.0])
    values = np.array([0.3, 0.5, -0.1, 0.2, 0.05, -0.4, -0.0001])
    # closed 1; outside the box 1; side 0.8; sheet 1; winding 0.4 / 2; winding 1 / 2; near the surface 0.0001 / 0.0005
    assert sign_confidence(values, rule, margin).tolist() == [255, 255, 204, 255, 51, 128, 51]


def test_the_wrong_signs_of_a_holed_ball_are_among_the_least_sure():
    """A ball with 5% of its area missing is solid (by construction); the samples signed wrong are
    near its holes, where the winding number is near 1/2: they rank among the lowest 5%."""
    vertices, faces, inside = construction("ball, 5% missing")
    signed = signed_mesh(Mesh(vertices, faces), rng=shape_rng(0, "ball"))
    points, values, rule, confidence = signed_queries(signed, 100_000, rng=shape_rng(0, "ball", 1), confidence=True)
    raw = points / signed.scale - signed.offset
    scored = unsigned_distance(vertices, faces, raw) * signed.scale > 0.005
    wrong = scored & ((values < 0) != inside(raw))
    assert wrong.sum() >= 1
    low = np.zeros(len(values), dtype=bool)
    low[np.nonzero(scored)[0][np.argsort(confidence[scored], kind="stable")[: int(0.05 * scored.sum())]]] = True
    assert (wrong & low).sum() >= 0.8 * wrong.sum()
    assert set(np.unique(rule[wrong])) <= {RULE_SIDE, RULE_WINDING}


@pytest.mark.slow
def test_prepare_stores_rule_and_confidence_only_when_asked(tmp_path):
    make_shapes(tmp_path / "shapes", 2, seed=1, categories=("chair", "airplane"), defects=("holes",))
    for flag in ([], ["--confidence"]):
        store = tmp_path / f"s{len(flag)}.zarr"
        sdfkit("prepare-shapenet", tmp_path / "shapes", "-o", store, "--samples", "3000", "--surface-samples", "300",
               "--workers", "1", *flag)  # fmt: skip
        group = zarr.open_group(str(store), mode="r")
        assert ("sdf/confidence" in group) == bool(flag) and ("sdf/rule" in group) == bool(flag)
    rule, confidence = group["sdf/rule"][:], group["sdf/confidence"][:]
    assert rule.shape == confidence.shape == (2, 3000) and rule.dtype == confidence.dtype == np.uint8
    assert set(np.unique(rule)) <= {RULE_CLOSED, RULE_OUTSIDE_BOX, RULE_SIDE, RULE_SHEET, RULE_WINDING}
    # the same samples and values with and without: the confidence draws nothing
    plain = zarr.open_group(str(tmp_path / "s0.zarr"), mode="r")
    assert np.array_equal(plain["sdf/values"][:], group["sdf/values"][:])
    ids = [str(i) for i in group["meta/id"][:]]
    holes = ids.index(next(i for i in ids if "holes" in i))
    assert (rule[holes] != RULE_CLOSED).any()  # a mesh with holes has open faces to be signed by
    values = group["sdf/values"][:]
    near = np.abs(values) < 0.0001
    assert near.any() and (confidence[near] <= 51).all()  # 0.0001 / 0.0005 of the way: near the surface is unsure
