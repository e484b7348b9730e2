"""Golden tests of the fusion functions: values computed by hand, outputs pinned bit for bit."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import random
import re
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import HashEmbeddings

from langchain_hybrid import fusion as fusion_module
from langchain_hybrid import retrievers as retrievers_module
from langchain_hybrid.adaptive import AdaptiveWeights, leg_weights
from langchain_hybrid.bm25 import BM25Index
from langchain_hybrid.config import FusionSettings, load_config
from langchain_hybrid.errors import ConfigError, HybridRetrieverError, InvalidQueryError
from langchain_hybrid.evaluation import parse_sweep
from langchain_hybrid.filters import parse_filter
from langchain_hybrid.fusion import (
    FUSION_METHODS,
    MAX_K,
    MAX_RRF_K,
    Fused,
    FusionFunction,
    FusionMethod,
    LegRun,
    Normalised,
    Normaliser,
    Population,
    Run,
    as_leg_run,
    check_count,
    check_rrf_k,
    check_weights,
    dbsf,
    dbsf_norm,
    fractional_ranks,
    fuse,
    min_max_norm,
    rank_norm,
    relative_score,
    rrf,
    weighted_sum,
    zscore,
    zscore_norm,
)
from langchain_hybrid.retrievers import HybridRetriever, LegHit, LegHits, leg_run

# Scores are ignored by RRF; they are given in descending order to look like real runs.
RUN_A = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
RUN_B = [("c", 0.9), ("a", 0.8), ("d", 0.7)]


def as_dict(fused: list[Fused]) -> dict[str, float]:
    return {f.id: f.score for f in fused}


def ids_of(fused: list[Fused]) -> list[str]:
    return [f.id for f in fused]


# ------------------------------------------------------------------------------------- rrf
def test_rrf_golden_equal_weights() -> None:
    fused = rrf([RUN_A, RUN_B], [1.0, 1.0])
    expected = {
        "a": 1 / 61 + 1 / 62,
        "b": 1 / 62,
        "c": 1 / 63 + 1 / 61,
        "d": 1 / 63,
    }
    assert ids_of(fused) == ["a", "c", "b", "d"]
    assert as_dict(fused) == pytest.approx(expected, abs=1e-15)
    assert all(isinstance(f, Fused) for f in fused)


def test_rrf_golden_weighted() -> None:
    fused = rrf([RUN_A, RUN_B], [0.7, 0.3])
    expected = {
        "a": 0.7 / 61 + 0.3 / 62,
        "b": 0.7 / 62,
        "c": 0.7 / 63 + 0.3 / 61,
        "d": 0.3 / 63,
    }
    assert as_dict(fused) == pytest.approx(expected, abs=1e-15)
    # a 0.016318, b 0.011290, c 0.016029, d 0.004762
    assert ids_of(fused) == ["a", "c", "b", "d"]


def test_rrf_weights_can_reverse_the_order() -> None:
    # with all the weight on B, B's order wins: c first
    fused = rrf([RUN_A, RUN_B], [0.1, 0.9])
    expected = {
        "a": 0.1 / 61 + 0.9 / 62,
        "b": 0.1 / 62,
        "c": 0.1 / 63 + 0.9 / 61,
        "d": 0.9 / 63,
    }
    assert as_dict(fused) == pytest.approx(expected, abs=1e-15)
    assert ids_of(fused) == ["c", "a", "d", "b"]


def test_rrf_with_other_rrf_k() -> None:
    fused = rrf([RUN_A, RUN_B], [1.0, 1.0], rrf_k=1)
    expected = {"a": 1 / 2 + 1 / 3, "b": 1 / 3, "c": 1 / 4 + 1 / 2, "d": 1 / 4}
    assert as_dict(fused) == pytest.approx(expected, abs=1e-15)
    assert ids_of(fused) == ["a", "c", "b", "d"]
    fused_k0 = rrf([RUN_A], [2.0], rrf_k=0)
    assert as_dict(fused_k0) == pytest.approx({"a": 2.0, "b": 1.0, "c": 2 / 3}, abs=1e-15)


def test_rrf_tie_broken_by_best_rank_before_id() -> None:
    # "zz" is rank 1 in a leg of weight 61: 61 / (60 + 1) = 1.0 exactly.
    # "aa" is rank 2 in a leg of weight 62: 62 / (60 + 2) = 1.0 exactly.
    # Equal fused scores: the better best rank ("zz", rank 1) comes first although "aa" < "zz".
    fused = rrf([[("zz", 5.0)], [("top", 9.0), ("aa", 4.0)]], [61.0, 62.0])
    assert as_dict(fused) == {"top": 62 / 61, "zz": 1.0, "aa": 1.0}
    assert ids_of(fused) == ["top", "zz", "aa"]


def test_rrf_tie_with_equal_best_rank_broken_by_id() -> None:
    fused = rrf([[("y", 1.0), ("x", 0.5)], [("x", 1.0), ("y", 0.5)]], [1.0, 1.0])
    assert as_dict(fused) == {"x": 1 / 61 + 1 / 62, "y": 1 / 61 + 1 / 62}
    assert ids_of(fused) == ["x", "y"]
    # and the order does not depend on which run comes first
    swapped = rrf([[("x", 1.0), ("y", 0.5)], [("y", 1.0), ("x", 0.5)]], [1.0, 1.0])
    assert ids_of(swapped) == ["x", "y"]


def test_rrf_dedups_by_id() -> None:
    fused = rrf([RUN_A, RUN_B, [("a", 1.0)]], [1.0, 1.0, 1.0])
    assert sorted(ids_of(fused)) == ["a", "b", "c", "d"]
    assert len(fused) == 4
    assert as_dict(fused)["a"] == pytest.approx(1 / 61 + 1 / 62 + 1 / 61, abs=1e-15)


def test_rrf_identifies_documents_by_id_only() -> None:
    # same score, different ids: two documents (tied: both rank 1.5); different scores, same
    # id: one document
    fused = rrf([[("p", 1.0), ("q", 1.0)], [("p", 0.2)]], [1.0, 1.0])
    assert as_dict(fused) == pytest.approx({"p": 1 / 61.5 + 1 / 61, "q": 1 / 61.5}, abs=1e-15)
    assert ids_of(fused) == ["p", "q"]


def test_rrf_empty_runs() -> None:
    assert rrf([], []) == []
    assert rrf([[], []], [1.0, 1.0]) == []
    fused = rrf([[], RUN_B], [1.0, 0.5])
    assert ids_of(fused) == ["c", "a", "d"]
    assert as_dict(fused) == pytest.approx({"c": 0.5 / 61, "a": 0.5 / 62, "d": 0.5 / 63})


def test_rrf_zero_weight_leg_still_contributes_ids_at_zero() -> None:
    fused = rrf([[("a", 1.0)], [("b", 1.0)]], [1.0, 0.0])
    assert fused == [Fused("a", 1 / 61), Fused("b", 0.0)]


# ---------------------------------------------------------------------- relative_score
def test_relative_score_golden() -> None:
    run1 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]  # min-max: a 1, b 0.5, c 0
    run2 = [("c", 0.9), ("d", 0.5), ("a", 0.1)]  # min-max: c 1, d 0.5, a 0
    fused = relative_score([run1, run2], [0.6, 0.4])
    expected = {"a": 0.6, "b": 0.3, "c": 0.4, "d": 0.2}
    assert as_dict(fused) == pytest.approx(expected, abs=1e-12)
    assert ids_of(fused) == ["a", "c", "b", "d"]


def test_relative_score_ties_use_best_rank_then_id() -> None:
    run1 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
    run2 = [("c", 0.9), ("d", 0.5), ("a", 0.1)]
    fused = relative_score([run1, run2], [1.0, 1.0])
    # a = 1 + 0 = 1, c = 0 + 1 = 1 (both best rank 1 -> by id); b = d = 0.5 (both rank 2)
    assert as_dict(fused) == pytest.approx({"a": 1.0, "b": 0.5, "c": 1.0, "d": 0.5})
    assert ids_of(fused) == ["a", "c", "b", "d"]


def test_relative_score_all_equal_and_single_scores() -> None:
    # plain lists are cut lists: a missing document may score as much as the last hit, so
    # equal hits (and a single hit) are no better than it: every leg adds 0
    fused = relative_score([[("x", 3.0), ("y", 3.0)], [("z", -7.0)]], [1.0, 0.5])
    assert as_dict(fused) == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert ids_of(fused) == ["x", "z", "y"]  # best rank (x, z: 1; y: 2), then id
    # complete lists from a leg with floor 0: every other document scores 0, so the hits are
    # the leg's best and normalise to 1.0 against a credit of 0.0
    complete = relative_score(
        [LegRun([("x", 3.0), ("y", 3.0)], 10, 0.0), LegRun([("z", 2.0)], 10, 0.0)], [1.0, 0.5]
    )
    assert as_dict(complete) == {"x": 1.0, "y": 1.0, "z": 0.5}


def test_relative_score_negative_scores() -> None:
    # distances turned into negative scores: -1 best, -5 worst
    fused = relative_score([[("a", -1.0), ("b", -2.0), ("c", -5.0)]], [1.0])
    assert as_dict(fused) == pytest.approx({"a": 1.0, "b": 0.75, "c": 0.0})


def test_relative_score_ignores_rrf_k_and_handles_empty_runs() -> None:
    run = [("a", 4.0), ("b", 2.0), ("c", 0.0)]
    assert relative_score([run, []], [1.0, 1.0], rrf_k=1) == relative_score([run], [1.0])
    assert relative_score([[], []], [1.0, 1.0]) == []


# -------------------------------------------------------------------------------- dbsf
def test_dbsf_golden_three_values() -> None:
    # mean 2, population sigma sqrt(2/3); limits 2 -+ 3 sigma; value -> 0.5 + (v - 2) / (6 sigma)
    # a cut list credits a missing document with its last hit (1 -> 0.5 - 1 / (6 sigma)), and
    # fused scores are relative to that credit
    sigma = math.sqrt(2 / 3)
    fused = dbsf([[("c", 3.0), ("b", 2.0), ("a", 1.0)]], [1.0])
    expected = {"c": 2 / (6 * sigma), "b": 1 / (6 * sigma), "a": 0.0}
    assert as_dict(fused) == pytest.approx(expected, abs=1e-12)
    assert as_dict(fused)["c"] == pytest.approx(0.408248, abs=1e-6)
    assert ids_of(fused) == ["c", "b", "a"]


def test_dbsf_clips_outliers_to_one() -> None:
    # ten scores 0 and one 1: mean 1/11, population sigma sqrt(10)/11.
    # z of the outlier = sqrt(10) > 3 -> (z + 3) / 6 > 1, clipped to 1.0.
    # z of each zero = -1/sqrt(10) -> (3 - 1/sqrt(10)) / 6 = 0.447296...
    # the credit (the last hit, 0) normalises to that same low value: relative scores
    run = [("top", 1.0)] + [(f"z{i:02d}", 0.0) for i in range(10)]
    fused = dbsf([run], [1.0])
    scores = as_dict(fused)
    low = (3 - 1 / math.sqrt(10)) / 6
    assert scores["top"] == pytest.approx(1.0 - low, abs=1e-12)
    for i in range(10):
        assert scores[f"z{i:02d}"] == 0.0
    assert ids_of(fused) == ["top"] + [f"z{i:02d}" for i in range(10)]


def test_dbsf_clips_low_outliers_to_zero() -> None:
    run = [(f"o{i:02d}", 1.0) for i in range(10)] + [("bottom", 0.0)]
    scores = as_dict(dbsf([run], [1.0]))
    assert scores["bottom"] == 0.0
    assert scores["o00"] == pytest.approx((3 + 1 / math.sqrt(10)) / 6, abs=1e-12)


def test_dbsf_weighted_sum_of_two_legs() -> None:
    sigma1 = math.sqrt(2 / 3)  # leg 1: 1, 2, 3; credit 1 -> 0.5 - 1 / (6 sigma1)
    sigma2 = 5.0  # leg 2: 10, 0 -> mean 5, sigma 5; values 0.5 +- 5/30; credit 0 -> 1/3
    fused = dbsf([[("a", 3.0), ("b", 2.0), ("c", 1.0)], [("c", 10.0), ("d", 0.0)]], [2.0, 1.0])
    expected = {
        "a": 2 * (2 / (6 * sigma1)),
        "b": 2 * (1 / (6 * sigma1)),
        "c": 2 * 0.0 + (10 / (6 * sigma2)),
        "d": 0.0,
    }
    assert as_dict(fused) == pytest.approx(expected, abs=1e-12)
    assert ids_of(fused) == sorted(expected, key=lambda i: -expected[i])


def test_dbsf_all_equal_scores() -> None:
    # sigma 0: a step at the common score. Cut lists: the credit (the last hit) is on the
    # step too, so the leg adds nothing; complete lists: the floor is below it, 1.0 each
    assert as_dict(dbsf([[("x", 2.0), ("y", 2.0)]], [0.5])) == {"x": 0.0, "y": 0.0}
    assert as_dict(dbsf([[("only", -3.0)]], [1.0])) == {"only": 0.0}
    complete = dbsf([LegRun([("x", 2.0), ("y", 2.0)], 5, 0.0)], [0.5])
    assert as_dict(complete) == {"x": 0.5, "y": 0.5}
    assert dbsf([[]], [1.0]) == []


# -------------------------------------------------------------------------------- fuse
@pytest.mark.parametrize("method", ["rrf", "relative_score", "dbsf"])
def test_fuse_dispatches_by_name(method: str) -> None:
    runs = [RUN_A, RUN_B]
    direct = {"rrf": rrf, "relative_score": relative_score, "dbsf": dbsf}[method]
    assert FUSION_METHODS[method] is direct
    assert fuse(method, runs, [0.7, 0.3]) == direct(runs, [0.7, 0.3])


def test_fuse_passes_rrf_k() -> None:
    assert fuse("rrf", [RUN_A, RUN_B], [1, 1], rrf_k=1) == rrf([RUN_A, RUN_B], [1, 1], rrf_k=1)
    assert fuse("rrf", [RUN_A, RUN_B], [1, 1], rrf_k=1) != fuse("rrf", [RUN_A, RUN_B], [1, 1])


def test_fuse_methods_differ_on_the_same_runs() -> None:
    # RRF only sees ranks; relative_score sees the score gap that makes "a" win by far.
    runs = [
        [("a", 100.0), ("b", 1.0), ("c", 0.5), ("e", 0.0)],
        [("b", 1.0), ("c", 0.99), ("a", 0.98), ("e", 0.0)],
    ]
    # RRF: b = 1/62 + 1/61 > a = 1/61 + 1/63
    assert ids_of(fuse("rrf", runs, [1, 1])) == ["b", "a", "c", "e"]
    fused = fuse("relative_score", runs, [1, 1])
    assert as_dict(fused) == pytest.approx(
        {"a": 1.0 + 0.98, "b": 1 / 100 + 1.0, "c": 0.5 / 100 + 0.99, "e": 0.0}, abs=1e-12
    )
    assert ids_of(fused) == ["a", "b", "c", "e"]


def test_fuse_unknown_method() -> None:
    with pytest.raises(InvalidQueryError, match="unknown fusion method 'borda'"):
        fuse("borda", [RUN_A], [1.0])
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse("RRF", [RUN_A], [1.0])


def test_fuse_checks_weights() -> None:
    with pytest.raises(InvalidQueryError):
        fuse("rrf", [RUN_A, RUN_B], [1.0])
    with pytest.raises(InvalidQueryError):
        fuse("dbsf", [RUN_A, RUN_B], [0.0, 0.0])


# ----------------------------------------------------------------------- check_weights
def test_check_weights_accepts_and_normalises_to_floats() -> None:
    assert check_weights([1, 2], 2) == (1.0, 2.0)
    assert check_weights((0.0, 0.5, 0), 3) == (0.0, 0.5, 0.0)
    assert all(type(w) is float for w in check_weights([1, 2], 2))


@pytest.mark.parametrize(
    ("weights", "n_legs"),
    [
        pytest.param([1.0], 2, id="too-few"),
        pytest.param([1.0, 1.0, 1.0], 2, id="too-many"),
        pytest.param([], 1, id="empty"),
        pytest.param([1.0, -0.5], 2, id="negative"),
        pytest.param([1.0, math.nan], 2, id="nan"),
        pytest.param([1.0, math.inf], 2, id="inf"),
        pytest.param([0.0, 0.0], 2, id="all-zero"),
        pytest.param([0, 0], 2, id="all-zero-int"),
        pytest.param([True, 1.0], 2, id="bool"),
        pytest.param([False, True], 2, id="bools"),
        pytest.param(["1", "1"], 2, id="strings"),
        pytest.param("11", 2, id="a-string"),
        pytest.param([1.0, None], 2, id="none"),
        pytest.param(None, 2, id="not-a-sequence"),
        pytest.param({1.0, 2.0}, 2, id="a-set"),
        pytest.param(0.5, 1, id="a-number"),
    ],
)
def test_check_weights_rejects(weights: object, n_legs: int) -> None:
    with pytest.raises(InvalidQueryError) as info:
        check_weights(weights, n_legs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, HybridRetrieverError)


def test_zscore_by_hand() -> None:
    # leg A scores 3, 2, 1: mean 2, sigma sqrt(2/3), credit z(1) = -1/sigma_a;
    # leg B scores 10, 0: mean 5, sigma 5, credit z(0) = -1. Scores are z minus the credit.
    a = [("a", 3.0), ("b", 2.0), ("c", 1.0)]
    b = [("c", 10.0), ("d", 0.0)]
    sigma_a = (2 / 3) ** 0.5
    fused = dict(zscore([a, b], (0.5, 0.5)))
    assert fused["a"] == pytest.approx(0.5 * (2 / sigma_a))
    assert fused["b"] == pytest.approx(0.5 * (1 / sigma_a))
    assert fused["c"] == pytest.approx(0.5 * 0.0 + 0.5 * 2.0)
    assert fused["d"] == pytest.approx(0.0)
    # a 1.225, c 1.0, b 0.612, d 0: c, last in A (as low as a document A did not return) but
    # first in B, beats b, middling in A and absent from B
    assert [f.id for f in zscore([a, b], (0.5, 0.5))] == ["a", "c", "b", "d"]
    flat = zscore([[("x", 2.0), ("y", 2.0)]], (1.0,))
    assert [(f.id, f.score) for f in flat] == [("x", 0.0), ("y", 0.0)]  # tie: best rank, then id


# ------------------------------------------------- what a leg knows beyond its hits
def test_population_mean_sigma_by_hand() -> None:
    # scores 0, 1, 2, 3: total 6, squares 14; mean 1.5, variance 14/4 - 2.25 = 1.25
    assert Population(4, 6.0, 14.0).mean_sigma() == pytest.approx((1.5, math.sqrt(1.25)))
    assert Population(0, 0.0, 0.0).mean_sigma() == (0.0, 0.0)
    assert Population(3, 6.0, 12.0).mean_sigma() == (2.0, 0.0)  # all equal


def test_leg_run_complete_and_credit() -> None:
    hits = [("a", 4.0), ("b", 2.0)]
    assert LegRun(hits, 5, 0.0).complete  # fewer than asked for, with a floor: exact
    assert LegRun(hits, 5, 0.0).credit() == 0.0
    assert not LegRun(hits, 2, 0.0).complete  # as many as asked for: cut
    assert LegRun(hits, 2, 0.0).credit() == 2.0  # a missing document scores at most the last
    assert not LegRun(hits, 5, None).complete  # no floor (vector leg): the bound is all we know
    assert LegRun(hits, 5, None).credit() == 2.0
    assert LegRun(hits).credit() == 2.0


def test_fractional_ranks() -> None:
    assert fractional_ranks([("a", 5.0), ("b", 3.0), ("c", 3.0), ("d", 1.0)]) == [1, 2.5, 2.5, 4]
    assert fractional_ranks([("a", 2.0), ("b", 2.0), ("c", 2.0)]) == [2, 2, 2]
    assert fractional_ranks([("a", 1.0)]) == [1]
    assert fractional_ranks([]) == []


def test_rrf_tied_scores_share_the_mean_rank() -> None:
    fused = rrf([[("a", 5.0), ("b", 3.0), ("c", 3.0), ("d", 1.0)]], [1.0])
    expected = {"a": 1 / 61, "b": 1 / 62.5, "c": 1 / 62.5, "d": 1 / 64}
    assert as_dict(fused) == pytest.approx(expected, abs=1e-15)
    assert ids_of(fused) == ["a", "b", "c", "d"]  # b, c tied: best rank, then id


# One BM25 leg (a complete list: floor 0, depth 10) beside one vector leg (cut: 4 of 4 asked).
VECTOR = LegRun([("v1", 0.9), ("v2", 0.5), ("x", 0.4), ("v3", 0.2)], 4)
SIGMA_V = math.sqrt(0.065)  # vector: mean 0.5, variance (0.16 + 0 + 0.01 + 0.09) / 4
# vector z minus its credit z(0.2) = (score - 0.2) / SIGMA_V
V_REL = {"v1": 0.7 / SIGMA_V, "v2": 0.3 / SIGMA_V, "x": 0.2 / SIGMA_V, "v3": 0.0}


def test_zscore_one_hit_stands_out_against_the_population() -> None:
    # one document of 5 matches, score 4: mean 0.8, sigma sqrt(16/5 - 0.64) = 1.6;
    # z(4) = 2 and the credit z(0) = -0.5: the sole match adds 2.5 (its list alone: 0)
    bm25 = LegRun([("x", 4.0)], 10, 0.0, Population(5, 4.0, 16.0))
    fused = zscore([bm25, VECTOR], [0.5, 0.5])
    expected = {k: 0.5 * v for k, v in V_REL.items()}
    expected["x"] += 0.5 * 2.5
    assert as_dict(fused) == pytest.approx(expected, abs=1e-12)
    # x 1.642, v1 1.373, v2 0.588, v3 0: the sure BM25 match beats the vector leg's top
    assert ids_of(fused) == ["x", "v1", "v2", "v3"]
    # standardised over its own one-element list, the same hit weighs nothing
    assert as_dict(zscore([[("x", 4.0)]], [1.0])) == {"x": 0.0}


def test_zscore_equal_scores_are_equal_evidence() -> None:
    # two of 6 documents score 3: mean 1, sigma sqrt(18/6 - 1) = sqrt(2); each adds
    # z(3) - z(0) = 3 / sqrt(2) (over the two-element list alone: sigma 0, nothing)
    bm25 = LegRun([("a", 3.0), ("b", 3.0)], 10, 0.0, Population(6, 6.0, 18.0))
    fused = zscore([bm25, VECTOR], [0.5, 0.5])
    assert as_dict(fused)["a"] == pytest.approx(0.5 * 3 / math.sqrt(2), abs=1e-12)
    assert as_dict(fused)["a"] == as_dict(fused)["b"]
    assert ids_of(fused) == ["v1", "a", "b", "v2", "x", "v3"]  # 1.373, 1.061, 1.061, 0.588, ...


def test_zscore_two_hits_by_hand() -> None:
    # scores 4, 2 among 8 documents: mean 0.75, variance 20/8 - 0.5625 = 1.9375; a complete
    # list with floor 0 adds (score - 0) / sigma
    sigma = math.sqrt(1.9375)
    bm25 = LegRun([("a", 4.0), ("b", 2.0)], 10, 0.0, Population(8, 6.0, 20.0))
    assert as_dict(zscore([bm25], [1.0])) == pytest.approx({"a": 4 / sigma, "b": 2 / sigma})


def test_zscore_cut_list_against_population_credits_the_last_hit() -> None:
    # 3 hits asked for, 3 returned: a missing document scores at most 1; population of 10
    # documents: total 9, squares 21 -> mean 0.9, variance 2.1 - 0.81 = 1.29
    sigma = math.sqrt(1.29)
    bm25 = LegRun([("a", 4.0), ("b", 2.0), ("c", 1.0)], 3, 0.0, Population(10, 9.0, 21.0))
    fused = zscore([bm25], [1.0])
    assert as_dict(fused) == pytest.approx({"a": 3 / sigma, "b": 1 / sigma, "c": 0.0})


@pytest.mark.parametrize("method", sorted(FUSION_METHODS))
def test_empty_legs(method: str) -> None:
    empty = LegRun([], 10, 0.0, Population(5, 0.0, 0.0))
    assert fuse(method, [empty, LegRun([], 4)], [0.5, 0.5]) == []
    assert fuse(method, [[], []], [0.5, 0.5]) == []
    # an empty leg adds nothing: the other leg's order and scores as if alone
    assert fuse(method, [empty, VECTOR], [0.5, 0.5]) == fuse(method, [[], VECTOR], [0.5, 0.5])
    assert ids_of(fuse(method, [empty, VECTOR], [0.5, 0.5])) == ["v1", "v2", "x", "v3"]


def test_degenerate_lists_rrf_relative_score_dbsf_by_hand() -> None:
    one = LegRun([("x", 4.0)], 10, 0.0, Population(5, 4.0, 16.0))
    equal = LegRun([("a", 3.0), ("b", 3.0)], 10, 0.0, Population(6, 6.0, 18.0))
    two = LegRun([("a", 4.0), ("b", 2.0)], 10, 0.0, Population(8, 6.0, 20.0))
    # rrf: ranks only; ties share the mean rank
    assert as_dict(rrf([one], [1.0])) == {"x": 1 / 61}
    assert as_dict(rrf([equal], [1.0])) == {"a": 1 / 61.5, "b": 1 / 61.5}
    assert as_dict(rrf([two], [1.0])) == {"a": 1 / 61, "b": 1 / 62}
    # relative_score: between the floor (0, the credit of a complete list) and the best
    assert as_dict(relative_score([one], [1.0])) == {"x": 1.0}
    assert as_dict(relative_score([equal], [1.0])) == {"a": 1.0, "b": 1.0}
    assert as_dict(relative_score([two], [1.0])) == {"a": 1.0, "b": 0.5}
    # dbsf: the hits' mean +- 3 sigma; sigma 0 is a step above the floor
    assert as_dict(dbsf([one], [1.0])) == {"x": 1.0}
    assert as_dict(dbsf([equal], [1.0])) == {"a": 1.0, "b": 1.0}
    # two hits 4, 2: mean 3, sigma 1, limits 0 and 6; the credit 0 normalises to 0
    assert as_dict(dbsf([two], [1.0])) == pytest.approx({"a": 4 / 6, "b": 2 / 6})


def test_bm25_population_is_exact_with_and_without_filter() -> None:
    index = BM25Index()
    index.add(
        ["a", "b", "c", "d", "e"],
        ["red apple pie", "green apple", "pear tart", "red wine", "apple apple cider"],
        [{"k": 1}, {"k": 2}, {"k": 1}, {"k": 2}, {"k": 1}],
    )
    index.delete(["d"])
    scores = index.scores("red apple")
    hits, population = index.search_population("red apple", 2)
    assert [h.id for h in hits] == [h.id for h in index.search("red apple", 2)]
    assert population.size == 4  # live documents, "c" (no shared token) included at 0
    assert population.total == pytest.approx(float(scores.sum()))
    assert population.total_sq == pytest.approx(float((scores**2).sum()))
    node = parse_filter({"k": 1})
    hits, filtered = index.search_population("red apple", 10, node)
    assert {h.id for h in hits} == {"a", "e"}
    assert filtered.size == 3  # a, c, e pass the filter
    kept = sum(scores[i] for i, doc_id in enumerate(["a", "b", "c", "d", "e"]) if doc_id in "ace")
    assert filtered.total == pytest.approx(float(kept))
    assert index.search_population("unknown words", 5) == ([], Population(4, 0.0, 0.0))


def test_sole_exact_bm25_match_outranks_the_vector_top_under_the_defaults() -> None:
    # issue 12: a word in one document only. The vector leg's list is 50 documents that do not
    # hold it, with a clear winner; the BM25 leg returns the one document that does.
    method = HybridRetriever.model_fields["fusion"].default
    weights = HybridRetriever.model_fields["weights"].default
    fetch_k = HybridRetriever.model_fields["fetch_k"].default
    index = BM25Index()
    ids = [f"d{i:03d}" for i in range(200)]
    texts = [f"notes on topic {i % 7} and shared words like cache and pool" for i in range(200)]
    texts[137] = "the zx4471 flag turns on the write barrier"
    index.add(ids, texts)
    found, population = index.search_population("zx4471", fetch_k)
    bm25 = LegHits(LegHit(*hit) for hit in found)
    bm25.population = population
    assert [h.id for h in bm25] == ["d137"]
    vector = [LegHit(f"d{i:03d}", 0.9 if i == 0 else 0.6 - i / 200, None, {}) for i in range(50)]
    fused = fuse(
        method, [leg_run("bm25", bm25, fetch_k), leg_run("vector", vector, fetch_k)], weights
    )
    assert [f.id for f in fused[:2]] == ["d137", "d000"]
    # the old rule (its one-element list as the statistics) gave the sole match nothing
    old = fuse(
        method, [[(h.id, h.score) for h in bm25], [(h.id, h.score) for h in vector]], weights
    )
    assert old[0].id == "d000"


# ------------------------------------------------- normalisers and the one combination step
def test_normalisers_by_hand() -> None:
    # a cut list 3, 2, 1: credit 1 (the last hit); mean 2, population sigma sqrt(2/3)
    cut = LegRun([("a", 3.0), ("b", 2.0), ("c", 1.0)], 3)
    sigma = math.sqrt(2 / 3)
    assert zscore_norm(cut) == Normalised(pytest.approx([2 / sigma, 1 / sigma, 0.0]))
    assert min_max_norm(cut) == Normalised([1.0, 0.5, 0.0])
    # dbsf: (v - (2 - 3 sigma)) / (6 sigma), minus the credit's value: (v - 1) / (6 sigma)
    assert dbsf_norm(cut) == Normalised(pytest.approx([2 / (6 * sigma), 1 / (6 * sigma), 0.0]))
    # ranks 1, 2, 3 handed over as divisors rrf_k + rank
    assert rank_norm(cut, 10) == Normalised([11.0, 12.0, 13.0], reciprocal=True)
    assert rank_norm(cut) == Normalised([61.0, 62.0, 63.0], reciprocal=True)
    # a complete list 4, 2 (floor 0) among 8 documents of total 6, squares 20: the credit is
    # the floor; z against the population (mean 0.75, variance 1.9375)
    complete = LegRun([("a", 4.0), ("b", 2.0)], 10, 0.0, Population(8, 6.0, 20.0))
    pop_sigma = math.sqrt(1.9375)
    assert zscore_norm(complete) == Normalised(pytest.approx([4 / pop_sigma, 2 / pop_sigma]))
    assert min_max_norm(complete) == Normalised([1.0, 0.5])
    assert dbsf_norm(complete) == Normalised(pytest.approx([4 / 6, 2 / 6]))  # mean 3, sigma 1


def test_normalisers_of_equal_scores() -> None:
    cut = LegRun([("x", 2.0), ("y", 2.0)], 2)  # the credit equals the hits: nothing to add
    complete = LegRun([("x", 2.0), ("y", 2.0)], 5, 0.0)  # the floor 0 is below them
    for normalise in (zscore_norm, min_max_norm, dbsf_norm):
        assert normalise(cut) == Normalised([0.0, 0.0])
    assert zscore_norm(complete) == Normalised([0.0, 0.0])  # sigma 0 over the hits: no signal
    assert min_max_norm(complete) == Normalised([1.0, 1.0])
    assert dbsf_norm(complete) == Normalised([1.0, 1.0])
    assert rank_norm(cut) == Normalised([61.5, 61.5], reciprocal=True)


@pytest.mark.parametrize(
    ("method", "normaliser"),
    [("zscore", zscore_norm), ("relative_score", min_max_norm), ("dbsf", dbsf_norm)],
)
def test_each_score_method_is_its_normaliser_and_the_weighted_sum(
    method: str, normaliser: Normaliser
) -> None:
    for runs, weights, rrf_k in pinned_cases()[:40]:
        assert FUSION_METHODS[method](runs, weights, rrf_k=rrf_k) == weighted_sum(
            runs, weights, normaliser
        )


def test_rrf_is_rank_norm_and_the_weighted_sum() -> None:
    for runs, weights, rrf_k in pinned_cases()[:40]:
        expected = weighted_sum(runs, weights, lambda leg, k=rrf_k: rank_norm(leg, k))
        assert rrf(runs, weights, rrf_k=rrf_k) == expected


def test_weighted_sum_divides_reciprocal_values_exactly() -> None:
    # 0.3 / 61 and 0.3 * (1 / 61) differ in the last bit: RRF must be the former
    assert 0.3 / 61 != 0.3 * (1 / 61)
    fused = weighted_sum([[("a", 1.0)]], [0.3], rank_norm)
    assert fused == [Fused("a", 0.3 / 61)]

    # plain values are multiplied, and a leg's documents all get something, even at weight 0
    def fixed(leg: LegRun) -> Normalised:
        return Normalised([1.5, 0.25][: len(leg.hits)])

    fused = weighted_sum([[("a", 5.0), ("b", 1.0)], [("b", 9.0)]], [2.0, 0.0], fixed)
    assert fused == [Fused("a", 3.0), Fused("b", 0.5)]


def test_weighted_sum_skips_empty_legs_without_normalising_them() -> None:
    seen: list[int] = []

    def counting(leg: LegRun) -> Normalised:
        seen.append(len(leg.hits))
        return min_max_norm(leg)

    assert weighted_sum([[], [("a", 2.0), ("b", 1.0)]], [1.0, 1.0], counting) == [
        Fused("a", 1.0),
        Fused("b", 0.0),
    ]
    assert seen == [2]


def test_fusion_methods_have_the_protocol_signature() -> None:
    # mypy checks FUSION_METHODS' values against FusionFunction; at run time, the same shape
    expected = ["runs", "weights", "rrf_k", "limit"]
    for function in FUSION_METHODS.values():
        parameters = inspect.signature(function).parameters
        assert list(parameters) == expected
        assert parameters["rrf_k"].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters["rrf_k"].default == 60
        assert parameters["limit"].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters["limit"].default is None
    assert isinstance(FusionFunction, type)
    assert set(FUSION_METHODS) == set(typing.get_args(FusionMethod))


# ---------------------------------------------------------- weights checked where they enter
def test_weights_are_checked_once_per_call_not_again_in_fusion(
    monkeypatch: pytest.MonkeyPatch, collection_name: str
) -> None:
    retriever = HybridRetriever.from_texts(
        ["red apple pie", "green apple tart", "pear cider", "plum jam"],
        embedding=HashEmbeddings(),
        collection_name=collection_name,
        cache=False,
        k=2,
    )
    calls: list[object] = []

    def counted(weights: object, n_legs: int) -> tuple[float, ...]:
        calls.append(weights)
        return check_weights(weights, n_legs)

    monkeypatch.setattr(retrievers_module, "check_weights", counted)
    monkeypatch.setattr(fusion_module, "check_weights", counted)
    docs = retriever.invoke("apple", weights=(0.3, 0.7))  # a per-call argument: checked once
    assert len(docs) == 2
    assert calls == [(0.3, 0.7)]
    calls.clear()
    retriever.invoke("apple")
    retriever.invoke("pear")  # the defaults: checked when the field was set, not per query
    assert len(calls) <= 1
    with pytest.raises(InvalidQueryError, match="finite non-negative"):
        retriever.invoke("apple", weights=(0.5, math.nan))
    with pytest.raises(ValueError, match="finite non-negative"):
        HybridRetriever.check_fields({"weights": (1.0, -1.0)})
    with pytest.raises(ValueError, match="must not all be zero"):
        FusionSettings(weights=(0.0, 0.0))


# ----------------------------------------------------------- rrf_k: one check, one message
RRF_K_MESSAGE = re.escape("rrf_k must be a finite number >= 0 and < 1e+12, got ")


def test_check_rrf_k() -> None:
    assert check_rrf_k(0) == 0.0
    assert type(check_rrf_k(60)) is float
    assert check_rrf_k(MAX_RRF_K - 1) == MAX_RRF_K - 1
    for bad in (-1, -0.5, math.nan, math.inf, -math.inf, MAX_RRF_K, 10**400, True, "60", None):
        with pytest.raises(InvalidQueryError, match=RRF_K_MESSAGE) as info:
            check_rrf_k(bad)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "yaml_text", "sweep_text"),
    [(-1, "-1", "-1"), (math.nan, ".nan", "nan"), (math.inf, ".inf", "inf")],
    ids=["negative", "nan", "inf"],
)
def test_rrf_k_rejected_alike_at_every_entry(
    tmp_path: Path, collection_name: str, value: float, yaml_text: str, sweep_text: str
) -> None:
    """Settings say ConfigError, calls InvalidQueryError (as for weights); one message."""
    retriever = HybridRetriever.from_texts(
        ["red apple pie", "pear cider"], embedding=HashEmbeddings(), collection_name=collection_name
    )
    config_file = tmp_path / "hybrid.yaml"
    config_file.write_text(f"fusion:\n  rrf_k: {yaml_text}\n", encoding="utf-8")
    settings: list[Callable[[], object]] = [
        lambda: HybridRetriever.from_texts(
            ["plum jam"], HashEmbeddings(), collection_name=f"{collection_name}-2", rrf_k=value
        ),
        lambda: load_config(config_file),
        lambda: load_config(environ={"LANGCHAIN_HYBRID_FUSION__RRF_K": yaml_text}),
        lambda: parse_sweep([f"rrf_k={sweep_text}"]),
    ]
    calls: list[Callable[[], object]] = [
        lambda: retriever.invoke("apple", rrf_k=value),
        lambda: fuse("rrf", [RUN_A, RUN_B], [0.5, 0.5], rrf_k=value),
    ]
    for entry in settings:
        with pytest.raises(ConfigError, match=RRF_K_MESSAGE):
            entry()
    for entry in calls:
        with pytest.raises(InvalidQueryError, match=RRF_K_MESSAGE):
            entry()
    assert retriever.invoke("apple", rrf_k=0)[0].page_content == "red apple pie"


# ----------------------------------------------- k, fetch_k, rerank_k: one check, one message
def test_check_count() -> None:
    assert check_count("k", 1) == 1
    assert check_count("k", MAX_K) == MAX_K
    for bad in (0, -1, MAX_K + 1, 4.0, True, "4", None):
        with pytest.raises(InvalidQueryError, match=re.escape("k must be an integer from 1 to ")):
            check_count("k", bad)


@pytest.mark.parametrize("name", ["k", "fetch_k", "rerank_k"])
@pytest.mark.parametrize("value", [0, MAX_K + 1, 4.5], ids=["zero", "too-many", "a-float"])
def test_counts_rejected_alike_at_every_entry(
    tmp_path: Path, collection_name: str, name: str, value: float
) -> None:
    """Settings say ConfigError, calls InvalidQueryError (as for weights); one message."""
    message = re.escape(f"{name} must be an integer from 1 to 1,000,000, got {value!r}")
    retriever = HybridRetriever.from_texts(
        ["red apple pie", "pear cider"], embedding=HashEmbeddings(), collection_name=collection_name
    )
    config_file = tmp_path / "hybrid.yaml"
    config_file.write_text(f"fusion:\n  {name}: {value}\n", encoding="utf-8")
    environ = {f"LANGCHAIN_HYBRID_FUSION__{name.upper()}": str(value)}
    settings: list[Callable[[], object]] = [
        lambda: HybridRetriever.from_texts(
            ["plum jam"], HashEmbeddings(), collection_name=f"{collection_name}-2", **{name: value}
        ),
        lambda: load_config(config_file),
        lambda: load_config(environ=environ),
    ]
    calls: list[Callable[[], object]] = [lambda: retriever.invoke("apple", **{name: value})]
    if name == "fetch_k":
        calls.append(lambda: retriever.rank_leg("bm25", "apple", fetch_k=value))  # type: ignore[arg-type]
        if isinstance(value, int):  # a sweep reads integers only
            settings.append(lambda: parse_sweep([f"fetch_k={value}"]))
    for entry in settings:
        with pytest.raises(ConfigError, match=message):
            entry()
    for entry in calls:
        with pytest.raises(InvalidQueryError, match=message):
            entry()
    assert retriever.invoke("apple", **{name: 1})[0].page_content == "red apple pie"


def test_adaptive_weights_are_valid_by_construction() -> None:
    # the model's weights go to fusion unchecked: every share, even from overflowing or
    # NaN logits, gives one finite non-negative weight per leg with a positive sum
    bm25 = LegRun([("a", 4.0), ("b", 1.0)], 10, 0.0, Population(10, 5.0, 17.0))
    vector = LegRun([("a", 0.9), ("c", 0.5), ("b", 0.2)], 3)
    for coefficients in (
        {"bm25_top_z": 1.0},
        {"bm25_top_z": 1.7e308},  # logit inf
        {"bm25_top_z": -1.7e308},  # logit -inf
        {"bm25_top_z": 1.7e308, "vector_top_z": -1.7e308},  # inf - inf: NaN
    ):
        model = AdaptiveWeights(intercept=0.0, coefficients=coefficients)
        weights = leg_weights(model, "apple", (0.5, 0.5), [bm25, vector])
        assert check_weights(weights, 2) == weights
    model = AdaptiveWeights(intercept=0.0, coefficients={"bm25_top_z": 1.0})
    assert 0.5 < leg_weights(model, "apple", (0.5, 0.5), [bm25, vector])[0] < 1.0


# ------------------------------------------- pinned outputs on generated runs (bit for bit)
# Outputs of every method on seeded, generated runs, pinned as digests of the exact bits of
# each result (ids in order, scores as float.hex). They were written by the implementation
# before normalisation was separated from combination (commit 3c4167e), so the split is proven
# to change no score and no order. A change here is a behaviour change: say so in CHANGELOG.md,
# then rewrite the file with `python -m tests.unit_tests.test_fusion`.
PINNED = Path(__file__).parent / "data" / "fusion_pinned.json"
PINNED_CASES = 160
_POOL = [f"d{i:02d}" for i in range(18)]


def _random_scores(rng: random.Random, n: int) -> list[float]:
    """``n`` descending scores: spread, rounded into ties, all equal, or negative."""
    shape = rng.random()
    if shape < 0.15:
        return [round(rng.random() * 5, 1)] * n
    scale = 30.0 if shape < 0.55 else 1.0  # BM25-like or cosine-like
    values = [rng.random() * scale - (scale * 0.6 if shape > 0.9 else 0.0) for _ in range(n)]
    if rng.random() < 0.4:
        values = [round(v, 1) for v in values]
    return sorted(values, reverse=True)


def _random_run(rng: random.Random) -> Run:
    n = int(rng.random() * 13)  # 0 to 12 hits
    ids = list(_POOL)
    rng.shuffle(ids)
    hits = list(zip(ids[:n], _random_scores(rng, n), strict=True))
    kind = rng.random()
    if kind < 0.3:
        return hits  # a plain list: cut
    depth = n if rng.random() < 0.4 else n + 1 + int(rng.random() * 5)
    if kind < 0.55:
        return LegRun(hits, depth)  # the vector leg: no floor, no population
    floor = 0.0 if kind < 0.9 else None
    if rng.random() < 0.3 or floor is None or any(s < 0 for _, s in hits):
        return LegRun(hits, depth, floor)
    zeros = int(rng.random() * 40)  # the documents the leg scored 0
    scores = [s for _, s in hits] + [rng.random() * min((s for _, s in hits), default=1.0)]
    population = Population(n + 1 + zeros, sum(scores), sum(s * s for s in scores))
    return LegRun(hits, depth, floor, population)


def pinned_cases() -> list[tuple[list[Run], list[float], float]]:
    """The generated inputs: runs (1 to 3 legs), weights (some 0), rrf_k."""
    rng = random.Random(20261204)  # noqa: S311  # test data, not secrets
    cases: list[tuple[list[Run], list[float], float]] = []
    while len(cases) < PINNED_CASES:
        runs = [_random_run(rng) for _ in range(1 + int(rng.random() * 3))]
        weights = [0.0 if rng.random() < 0.15 else rng.random() * 2 for _ in runs]
        rrf_k = [60.0, 0.0, 1.0, rng.random() * 100][int(rng.random() * 4)]
        if sum(weights) > 0:
            cases.append((runs, weights, rrf_k))
    return cases


def pinned_digest(fused: list[Fused]) -> str:
    exact = json.dumps([(f.id, f.score.hex()) for f in fused])
    return hashlib.sha256(exact.encode()).hexdigest()[:16]


def pinned_outputs() -> dict[str, list[str]]:
    cases = pinned_cases()
    return {
        method: [pinned_digest(fuse(method, r, w, rrf_k=k)) for r, w, k in cases]
        for method in sorted(FUSION_METHODS)
    }


def test_pinned_cases_cover_the_degenerate_shapes() -> None:
    legs = [as_leg_run(run) for runs, _, _ in pinned_cases() for run in runs]
    assert sum(not leg.hits for leg in legs) >= 10
    assert sum(len(leg.hits) == 1 for leg in legs) >= 10
    assert sum(len({s for _, s in leg.hits}) < len(leg.hits) for leg in legs) >= 20
    assert sum(leg.complete for leg in legs if leg.hits) >= 20
    assert sum(leg.population is not None for leg in legs if leg.hits) >= 20
    assert sum(min((s for _, s in leg.hits), default=0) < 0 for leg in legs) >= 5


@pytest.mark.parametrize("method", sorted(FUSION_METHODS))
def test_outputs_are_bit_identical_to_the_pinned_ones(method: str) -> None:
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))[method]
    cases = pinned_cases()
    assert len(pinned) == len(cases)
    for number, ((runs, weights, rrf_k), digest) in enumerate(zip(cases, pinned, strict=True)):
        fused = fuse(method, runs, weights, rrf_k=rrf_k)
        assert pinned_digest(fused) == digest, (number, runs, weights, rrf_k, fused)


@pytest.mark.parametrize("method", sorted(FUSION_METHODS))
def test_a_limit_returns_the_head_of_the_full_order(method: str) -> None:
    # the retriever asks for rerank_k only; ties straddling the cut are broken as in full
    function = FUSION_METHODS[method]
    cut_in_a_tie = 0
    for runs, weights, rrf_k in pinned_cases():
        full = function(runs, weights, rrf_k=rrf_k)
        for limit in range(1, len(full) + 2):
            assert function(runs, weights, rrf_k=rrf_k, limit=limit) == full[:limit]
            if 0 < limit < len(full) and full[limit - 1].score == full[limit].score:
                cut_in_a_tie += 1
    assert cut_in_a_tie >= 20
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidQueryError, match="limit must be an integer"):
            function([[("a", 1.0)]], [1.0], limit=bad)  # type: ignore[arg-type]


if __name__ == "__main__":
    PINNED.write_text(json.dumps(pinned_outputs(), indent=0) + "\n", encoding="utf-8")
