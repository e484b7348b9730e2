"""Rank fusion: pure functions over ranked lists of ``(doc_id, score)``; no I/O.

Every method has the signature ``fuse(runs, weights, *, rrf_k) -> list[Fused]``: ``runs`` holds
one ranked list per leg (best first, ids unique within a list), ``weights`` one weight per leg.
Results are sorted by fused score, descending; ties are broken by the best rank any leg gave the
document, then by document id, so the order is fully deterministic. Documents are identified by
id only, never by text.

Methods:
    ``rrf``: weighted Reciprocal Rank Fusion (Cormack, Clarke & Büttcher, SIGIR 2009):
        ``score(d) = sum_i w_i / (rrf_k + rank_i(d))``, ranks from 1.
    ``relative_score``: each leg's scores min-max normalised to [0, 1], then a weighted sum
        (Weaviate's relativeScoreFusion; a convex combination, Bruch et al., TOIS 2023).
    ``zscore``: each leg's scores standardised to z-scores (mean 0, standard deviation 1 over
        the leg's list), then a weighted sum; a document a leg did not return adds 0 (that leg's
        mean) for it. CombSUM over z-score normalised runs (Montague & Aslam, CIKM 2001; the
        ``z_score`` technique of OpenSearch's hybrid search). The default: best on SciFact train
        (see the README).
    ``dbsf``: distribution-based score fusion (after Qdrant's DBSF): each leg's scores
        normalised with the limits mean - 3 sigma and mean + 3 sigma (population sigma), clipped
        to [0, 1], then a weighted sum; a leg whose scores are all equal normalises to 1.0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, TypeAlias

from langchain_hybrid.errors import InvalidQueryError

Run: TypeAlias = Sequence[tuple[str, float]]
FusionMethod: TypeAlias = Literal["zscore", "rrf", "relative_score", "dbsf"]


class Fused(NamedTuple):
    """A fused result: the document id and its fused score."""

    id: str
    score: float


def _order(scores: dict[str, float], best_rank: dict[str, int]) -> list[Fused]:
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], best_rank[kv[0]], kv[0]))
    return [Fused(doc_id, score) for doc_id, score in ranked]


def _best_ranks(runs: Sequence[Run]) -> dict[str, int]:
    best: dict[str, int] = {}
    for run in runs:
        for rank, (doc_id, _) in enumerate(run, start=1):
            if rank < best.get(doc_id, math.inf):
                best[doc_id] = rank
    return best


def rrf(runs: Sequence[Run], weights: Sequence[float], *, rrf_k: float = 60) -> list[Fused]:
    """Weighted Reciprocal Rank Fusion: ``sum_i w_i / (rrf_k + rank_i)``, ranks from 1."""
    scores: dict[str, float] = {}
    for run, weight in zip(runs, weights, strict=True):
        for rank, (doc_id, _) in enumerate(run, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (rrf_k + rank)
    return _order(scores, _best_ranks(runs))


def _weighted_sum(
    runs: Sequence[Run],
    weights: Sequence[float],
    normalise: Callable[[list[float]], list[float]],
) -> list[Fused]:
    scores: dict[str, float] = {}
    for run, weight in zip(runs, weights, strict=True):
        if not run:
            continue
        normalised = normalise([score for _, score in run])
        for (doc_id, _), value in zip(run, normalised, strict=True):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight * value
    return _order(scores, _best_ranks(runs))


def _min_max(values: list[float]) -> list[float]:
    low, high = min(values), max(values)
    if high == low:
        return [1.0] * len(values)
    return [(v - low) / (high - low) for v in values]


def _z(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if sigma == 0.0:
        return [0.0] * len(values)
    return [(v - mean) / sigma for v in values]


def _three_sigma(values: list[float]) -> list[float]:
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if sigma == 0.0:
        return [1.0] * len(values)
    low, high = mean - 3 * sigma, mean + 3 * sigma
    return [min(1.0, max(0.0, (v - low) / (high - low))) for v in values]


def relative_score(
    runs: Sequence[Run], weights: Sequence[float], *, rrf_k: float = 60
) -> list[Fused]:
    """Min-max normalise each leg's scores to [0, 1], then sum them with the weights.

    ``rrf_k`` is accepted for a uniform signature and ignored. A leg whose scores are all
    equal normalises to 1.0.
    """
    del rrf_k
    return _weighted_sum(runs, weights, _min_max)


def zscore(runs: Sequence[Run], weights: Sequence[float], *, rrf_k: float = 60) -> list[Fused]:
    """Standardise each leg's scores (z-scores over its list), then sum them with the weights.

    ``rrf_k`` is accepted for a uniform signature and ignored. A leg whose scores are all
    equal contributes 0; fused scores can be negative.
    """
    del rrf_k
    return _weighted_sum(runs, weights, _z)


def dbsf(runs: Sequence[Run], weights: Sequence[float], *, rrf_k: float = 60) -> list[Fused]:
    """Normalise each leg with limits mean +- 3 sigma (clipped to [0, 1]), then a weighted sum.

    ``rrf_k`` is accepted for a uniform signature and ignored.
    """
    del rrf_k
    return _weighted_sum(runs, weights, _three_sigma)


FUSION_METHODS: dict[str, Callable[..., list[Fused]]] = {
    "zscore": zscore,
    "rrf": rrf,
    "relative_score": relative_score,
    "dbsf": dbsf,
}


def fuse(
    method: str, runs: Sequence[Run], weights: Sequence[float], *, rrf_k: float = 60
) -> list[Fused]:
    """Fuse ``runs`` with the method named ``method`` (a key of :data:`FUSION_METHODS`).

    Raises:
        InvalidQueryError: unknown method, or ``weights`` not one finite non-negative number
            per run with a positive sum.
    """
    try:
        function = FUSION_METHODS[method]
    except KeyError:
        msg = f"unknown fusion method {method!r}; expected one of {sorted(FUSION_METHODS)}"
        raise InvalidQueryError(msg) from None
    check_weights(weights, len(runs))
    if not math.isfinite(rrf_k) or rrf_k < 0:
        msg = f"rrf_k must be a finite number >= 0, got {rrf_k!r}"
        raise InvalidQueryError(msg)
    return function(runs, weights, rrf_k=rrf_k)


def check_weights(weights: object, n_legs: int) -> tuple[float, ...]:
    """Validate fusion weights: one finite, non-negative number per leg, positive sum.

    Raises:
        InvalidQueryError: the weights are not valid.
    """
    if not isinstance(weights, Sequence) or isinstance(weights, str):
        msg = f"weights must be a sequence of {n_legs} numbers, got {weights!r}"
        raise InvalidQueryError(msg)
    if len(weights) != n_legs or not all(
        isinstance(w, numbers.Real) and not isinstance(w, bool) for w in weights
    ):
        msg = f"weights must be {n_legs} finite non-negative numbers, got {weights!r}"
        raise InvalidQueryError(msg)
    try:
        values = tuple(float(w) for w in weights)
    except OverflowError:
        msg = f"weights must be {n_legs} finite non-negative numbers, got {weights!r}"
        raise InvalidQueryError(msg) from None
    if not all(math.isfinite(w) and w >= 0 for w in values):
        msg = f"weights must be {n_legs} finite non-negative numbers, got {weights!r}"
        raise InvalidQueryError(msg)
    if sum(values) <= 0:
        msg = f"weights must not all be zero, got {weights!r}"
        raise InvalidQueryError(msg)
    return values
