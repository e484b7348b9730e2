"""Golden tests of the fusion functions: every expected value is computed by hand here."""

from __future__ import annotations

import math

import pytest

from langchain_hybrid.errors import HybridRetrieverError, InvalidQueryError
from langchain_hybrid.fusion import (
    FUSION_METHODS,
    Fused,
    check_weights,
    dbsf,
    fuse,
    relative_score,
    rrf,
    zscore,
)

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
    # same score, different ids: two documents; different scores, same id: one document
    fused = rrf([[("p", 1.0), ("q", 1.0)], [("p", 0.2)]], [1.0, 1.0])
    assert as_dict(fused) == pytest.approx({"p": 2 / 61, "q": 1 / 62}, abs=1e-15)


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


def test_relative_score_all_equal_and_single_scores_normalise_to_one() -> None:
    fused = relative_score([[("x", 3.0), ("y", 3.0)], [("z", -7.0)]], [1.0, 0.5])
    assert as_dict(fused) == {"x": 1.0, "y": 1.0, "z": 0.5}
    assert ids_of(fused) == ["x", "y", "z"]


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
    sigma = math.sqrt(2 / 3)
    fused = dbsf([[("c", 3.0), ("b", 2.0), ("a", 1.0)]], [1.0])
    expected = {"c": 0.5 + 1 / (6 * sigma), "b": 0.5, "a": 0.5 - 1 / (6 * sigma)}
    assert as_dict(fused) == pytest.approx(expected, abs=1e-12)
    assert as_dict(fused)["c"] == pytest.approx(0.704124, abs=1e-6)
    assert ids_of(fused) == ["c", "b", "a"]


def test_dbsf_clips_outliers_to_one() -> None:
    # ten scores 0 and one 1: mean 1/11, population sigma sqrt(10)/11.
    # z of the outlier = sqrt(10) > 3 -> (z + 3) / 6 > 1, clipped to 1.0.
    # z of each zero = -1/sqrt(10) -> (3 - 1/sqrt(10)) / 6 = 0.447296...
    run = [("top", 1.0)] + [(f"z{i:02d}", 0.0) for i in range(10)]
    fused = dbsf([run], [1.0])
    scores = as_dict(fused)
    assert scores["top"] == 1.0
    low = (3 - 1 / math.sqrt(10)) / 6
    for i in range(10):
        assert scores[f"z{i:02d}"] == pytest.approx(low, abs=1e-12)
    assert ids_of(fused) == ["top"] + [f"z{i:02d}" for i in range(10)]


def test_dbsf_clips_low_outliers_to_zero() -> None:
    run = [(f"o{i:02d}", 1.0) for i in range(10)] + [("bottom", 0.0)]
    scores = as_dict(dbsf([run], [1.0]))
    assert scores["bottom"] == 0.0
    assert scores["o00"] == pytest.approx((3 + 1 / math.sqrt(10)) / 6, abs=1e-12)


def test_dbsf_weighted_sum_of_two_legs() -> None:
    sigma1 = math.sqrt(2 / 3)  # leg 1: 1, 2, 3
    sigma2 = 5.0  # leg 2: 10, 0 -> mean 5, sigma 5; values 0.5 +- 5/30
    fused = dbsf([[("a", 3.0), ("b", 2.0), ("c", 1.0)], [("c", 10.0), ("d", 0.0)]], [2.0, 1.0])
    expected = {
        "a": 2 * (0.5 + 1 / (6 * sigma1)),
        "b": 2 * 0.5,
        "c": 2 * (0.5 - 1 / (6 * sigma1)) + (0.5 + 5 / (6 * sigma2)),
        "d": 0.5 - 5 / (6 * sigma2),
    }
    assert as_dict(fused) == pytest.approx(expected, abs=1e-12)
    assert ids_of(fused) == sorted(expected, key=lambda i: -expected[i])


def test_dbsf_all_equal_scores_normalise_to_one() -> None:
    assert as_dict(dbsf([[("x", 2.0), ("y", 2.0)]], [0.5])) == {"x": 0.5, "y": 0.5}
    assert as_dict(dbsf([[("only", -3.0)]], [1.0])) == {"only": 1.0}
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
    # leg A scores 3, 2, 1: mean 2, sigma sqrt(2/3); leg B scores 10, 0: mean 5, sigma 5
    a = [("a", 3.0), ("b", 2.0), ("c", 1.0)]
    b = [("c", 10.0), ("d", 0.0)]
    sigma_a = (2 / 3) ** 0.5
    fused = dict(zscore([a, b], (0.5, 0.5)))
    assert fused["a"] == pytest.approx(0.5 * (1 / sigma_a))
    assert fused["b"] == pytest.approx(0.0)
    assert fused["c"] == pytest.approx(0.5 * (-1 / sigma_a) + 0.5 * 1.0)
    assert fused["d"] == pytest.approx(-0.5)
    # a 0.612, b 0, c -0.112 (its leg-B top score does not outweigh being last in A), d -0.5
    assert [f.id for f in zscore([a, b], (0.5, 0.5))] == ["a", "b", "c", "d"]
    flat = zscore([[("x", 2.0), ("y", 2.0)]], (1.0,))
    assert [(f.id, f.score) for f in flat] == [("x", 0.0), ("y", 0.0)]  # tie: best rank, then id
