"""Rank fusion: pure functions over ranked lists of ``(doc_id, score)``; no I/O.

Every method has the signature of :class:`FusionFunction`, ``method(runs, weights, *, rrf_k)
-> list[Fused]``, and is named in :data:`FUSION_METHODS`. ``runs`` holds one ranked list per
leg (best first, ids unique within a list), either a plain sequence of ``(id, score)`` pairs or
a :class:`LegRun`, which also says how many hits were asked for, what the leg scores a document
it does not match, and the statistics of all its scores; ``weights`` holds one weight per leg
(the retriever's fixed weights, or per query those of :mod:`langchain_hybrid.adaptive`).
Results are sorted by fused score, descending; ties are broken by the best rank any leg gave
the document, then by document id, so the order is fully deterministic.
Documents are identified by id only, never by text.

Each method is a per-leg normaliser and one combination step (as ranx separates ``norm`` from
``method``). A :class:`Normaliser` (:func:`zscore_norm`, :func:`min_max_norm`, :func:`dbsf_norm`,
:func:`rank_norm`) puts one leg's hits on a common scale, relative to what the leg credits a
document it did not return (:class:`Normalised`); :func:`weighted_sum` adds the legs up with
their weights. Weights are checked where they enter, by :func:`check_weights` alone: the
``fusion`` config section, the retriever's ``weights`` field, a per-call ``weights`` argument,
and :func:`fuse` for direct callers; the methods take them as valid, so the retriever's query
path checks them once. ``rrf_k`` is checked at the same places (and an evaluation sweep) by
:func:`check_rrf_k` alone, and the counts ``k``, ``fetch_k``, ``rerank_k`` by
:func:`check_count`.

The rule for short and degenerate lists (one hit, equal scores, two hits, an empty leg)
    A leg ranks the whole collection and returns the top ``depth`` (``fetch_k``) of it. Two
    things are needed beyond the hits: the statistics a score is normalised against, and the
    leg's standing of a document the *other* leg returned. Both come from the leg's ranking of
    the collection, never from the length of the list it happened to return:

    * **Statistics: the population, when the leg knows it.** A z-score is defined against the
      population the value is drawn from. The BM25 leg scores every live document (0 for one
      sharing no token with the query) to pick its top ``depth``, so it reports the exact count,
      sum and sum of squares of *all* its scores (:class:`Population`) at no extra cost. A top
      list is a biased sample of that population whose mean and spread depend on ``depth`` and
      on how many documents match: standardised over itself, a one-hit list, or hits with equal
      scores, have standard deviation 0 and contribute nothing (the sole document holding a rare
      identifier weighs 0, issue 12), and two or three hits reach z of only 1 to 1.4. Against
      the population, the one document of ``N`` that matches has z ``sqrt(N - 1)``: the leg is
      as sure as it can be, and says so. Montague & Aslam (CIKM 2001) standardised each run over
      its retrieved list because TREC runs carry their top 1,000 scores only; a leg that has the
      population uses it. A leg that does not (the vector leg: HNSW returns the top only) is
      standardised over its hits, as before. The vector leg's population could be had: for
      normalised embeddings the mean of ``q . d`` over the collection is ``q . mean(d)`` and
      its variance ``q' Cov(d) q``. Measured (2026-12-04, README "Quality"), standardising
      cosine against it lowers SciFact train nDCG@10 from 0.7380 to 0.7259 and does not lift
      the demo (hit@5 0.80 either way), so it is not done: against the population, the
      vector leg's best hits of a vague query still look sure (z 3 to 5), while its list
      statistics say how much its first hit stands out from its nearest rivals.
    * **Credit for a document the leg did not return.** A list shorter than ``depth`` from a leg
      with a floor (BM25: 0) is *complete*: every document not in it scores exactly the floor,
      and is credited with it. A list of ``depth`` hits is *cut*: a document not in it scores at
      most the last hit, and is credited with that bound (for min-max this is the usual "a
      missing document scores the list's minimum", Fox & Shaw, TREC-2 1994; Bruch, Gai & Ingber,
      TOIS 2023, show that the theoretical lower bound of BM25, 0, normalises better than a
      list's minimum, which is what a complete list gives here). A plain sequence is taken as
      cut. The old rule credited the list's mean (z-score 0), placing an absent document above
      half of the leg's own hits.
    * **Equal scores are equal evidence**: every method gives tied hits of one leg the same
      value (``rrf``: the mean of their ranks, the fractional ranking of Kendall, 1945).
    * A leg whose scores are all equal (population or list, hits and credit alike) cannot tell
      documents apart: it adds the same to every document, so it cannot change the order.
    * An empty list adds nothing to any document; if every list is empty the result is empty.

Methods:
    ``zscore`` (the default): each leg's scores standardised, ``(s - mean) / sigma`` over its
        population (else its hits), then a weighted sum, each leg's credit going to the
        documents it did not return. CombSUM over z-score normalised runs (Montague & Aslam,
        CIKM 2001; the ``z_score`` technique of OpenSearch's hybrid search). Chosen on SciFact
        train and an exact-match set, see the README.
    ``rrf``: weighted Reciprocal Rank Fusion (Cormack, Clarke & Büttcher, SIGIR 2009):
        ``score(d) = sum_i w_i / (rrf_k + rank_i(d))``, ranks from 1, tied scores sharing the
        mean of their ranks; a document a leg did not return gets nothing from it.
    ``relative_score``: each leg's scores min-max normalised to [0, 1] between its credit (the
        floor of a complete list, the last hit of a cut one) and its best score, then a weighted
        sum (Weaviate's relativeScoreFusion; Lee, SIGIR 1997; a convex combination, Bruch et
        al.). Hits that all equal the credit normalise to 1.0, as does the credit.
    ``dbsf``: distribution-based score fusion (after Qdrant's DBSF): each leg's scores
        normalised with the limits mean - 3 sigma and mean + 3 sigma of its hits (population
        sigma; not of the leg's population, against which every top hit of a selective query
        lies beyond 3 sigma), clipped to [0, 1], the credit likewise, then a weighted sum. Hits
        of equal scores normalise to 1.0, and a credit below them (a complete list's floor) to
        0.0.

Fused scores are relative: the sum of the legs' weighted credits is left out (it is the same
for every document), so a document only one leg returned is compared with one both returned on
the same scale.
"""

from __future__ import annotations

__all__ = [
    "FUSION_METHODS",
    "MAX_K",
    "MAX_RRF_K",
    "Fused",
    "FusionFunction",
    "FusionMethod",
    "Hits",
    "LegRun",
    "Normalised",
    "Normaliser",
    "Population",
    "Run",
    "check_count",
    "check_rrf_k",
    "check_weights",
    "dbsf",
    "dbsf_norm",
    "fuse",
    "min_max_norm",
    "rank_norm",
    "relative_score",
    "rrf",
    "weighted_sum",
    "zscore",
    "zscore_norm",
]

import math
import numbers
from collections.abc import Sequence
from operator import itemgetter
from typing import Literal, NamedTuple, Protocol, TypeAlias

from langchain_hybrid.errors import InvalidQueryError

Hits: TypeAlias = Sequence[tuple[str, float]]
FusionMethod: TypeAlias = Literal["zscore", "rrf", "relative_score", "dbsf"]


class Population(NamedTuple):
    """Statistics of every score a leg gave, not only of the hits it returned.

    Attributes:
        size: documents scored (the live documents that pass the filter).
        total: the sum of their scores.
        total_sq: the sum of their squared scores.
    """

    size: int
    total: float
    total_sq: float

    def mean_sigma(self) -> tuple[float, float]:
        """Mean and population standard deviation (``(0.0, 0.0)`` for no documents)."""
        if self.size <= 0:
            return 0.0, 0.0
        mean = self.total / self.size
        return mean, math.sqrt(max(self.total_sq / self.size - mean * mean, 0.0))


class LegRun(NamedTuple):
    """One leg's ranked hits, with what the leg knows about the documents it did not return.

    Attributes:
        hits: ``(id, score)`` pairs, best first.
        depth: how many hits were asked for (``fetch_k``); ``None``: unknown (taken as cut).
        floor: the score the leg gives a document it does not match (BM25: ``0.0``), so the
            score of every document missing from a list shorter than ``depth``; ``None``: no
            such score (the vector leg).
        population: statistics of all the leg's scores (BM25 knows them); ``None``: unknown,
            the hits' own statistics are used.
    """

    hits: Hits
    depth: int | None = None
    floor: float | None = None
    population: Population | None = None

    @property
    def complete(self) -> bool:
        """Whether every document missing from the list scores exactly the floor."""
        return self.floor is not None and self.depth is not None and len(self.hits) < self.depth

    def credit(self) -> float:
        """The leg's score for a document it did not return: the floor, or the last hit's bound."""
        if self.floor is not None and self.complete:
            return self.floor
        return min(score for _, score in self.hits)

    def mean_sigma(self) -> tuple[float, float]:
        """Mean and standard deviation of the population if known, else of the hits."""
        if self.population is not None and self.population.size > 0:
            return self.population.mean_sigma()
        values = [score for _, score in self.hits]
        mean = sum(values) / len(values)
        return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


Run: TypeAlias = Hits | LegRun


class Fused(NamedTuple):
    """A fused result: the document id and its fused score."""

    id: str
    score: float


def as_leg_run(run: Run) -> LegRun:
    """A :class:`LegRun` as is; a plain list of ``(id, score)`` pairs as a cut list."""
    return run if isinstance(run, LegRun) else LegRun(run)


def _order(
    scores: dict[str, float], runs: Sequence[LegRun], limit: int | None = None
) -> list[Fused]:
    """The documents by fused score, descending; equal scores by best rank, then id.

    Without equal scores, one sort on the score alone (a C-level key); with them (BM25's equal
    scores and RRF's equal ranks make them common), on ``(-score, best rank, id)``. ``limit``:
    only the best ``limit``: sorted on the score, cut after the run of equal scores the cut
    falls in, and only that head ordered on the whole key (the retriever's query path).
    """
    if limit is not None and check_count("limit", limit) < len(scores):
        ranked = sorted(scores.items(), key=itemgetter(1), reverse=True)
        # keep the run of equal scores that straddles the cut: its order decides the last ones
        end, last = limit, ranked[limit - 1][1]
        while end < len(ranked) and ranked[end][1] == last:
            end += 1
        ranked = ranked[:end]
        tied = len(set(map(itemgetter(1), ranked))) < len(ranked)
    else:
        ranked = list(scores.items())
        tied = len(set(scores.values())) < len(ranked)
        if not tied:
            ranked.sort(key=itemgetter(1), reverse=True)
    if tied:
        best = _best_ranks(runs)
        ranked.sort(key=lambda kv: (-kv[1], best[kv[0]], kv[0]))
    return list(map(Fused._make, ranked[:limit]))


def _best_ranks(runs: Sequence[LegRun]) -> dict[str, int]:
    best: dict[str, int] = {}
    get, inf = best.get, math.inf
    for run in runs:
        for rank, (doc_id, _) in enumerate(run.hits, start=1):
            if rank < get(doc_id, inf):
                best[doc_id] = rank
    return best


def fractional_ranks(hits: Hits, offset: float = 0.0) -> list[float]:
    """Ranks from 1, runs of equal scores sharing the mean of their positions (1, 2.5, 2.5, 4).

    ``offset`` is added to each (:func:`rank_norm` passes ``rrf_k``).
    """
    ranks: list[float] = []
    start = 0
    while start < len(hits):
        end = start + 1
        while end < len(hits) and hits[end][1] == hits[start][1]:
            end += 1
        ranks.extend([offset + (start + 1 + end) / 2] * (end - start))
        start = end
    return ranks


# ------------------------------------------------------------------------ normalisation
class Normalised(NamedTuple):
    """One leg's hits on the scale the legs are summed on, relative to the leg's credit.

    Attributes:
        values: one per hit, in the leg's order: the hit's normalised score minus the
            normalised credit (the leg's score for a document it did not return), so the
            documents a leg did not return get 0 from it.
        reciprocal: ``values`` are divisors: a hit adds ``weight / value``. Ranks are
            normalised to ``1 / (rrf_k + rank)``; given as ``rrf_k + rank``, the weighted sum
            is ``w / (rrf_k + rank)`` exactly as RRF defines it, where ``w * (1 / (rrf_k +
            rank))`` can differ in the last bit and split an exact tie between two legs.
    """

    values: list[float]
    reciprocal: bool = False


class Normaliser(Protocol):
    """Puts one leg's hits on the common scale (called for a leg with at least one hit).

    :func:`zscore_norm`, :func:`min_max_norm`, :func:`dbsf_norm`, and :func:`rank_norm` with
    its ``rrf_k`` bound.
    """

    def __call__(self, leg: LegRun, /) -> Normalised:
        """The leg's hits on the common scale, relative to its credit."""
        ...  # pragma: no cover


def zscore_norm(leg: LegRun) -> Normalised:
    """``(s - mean) / sigma`` over the leg's population if known, else over its hits.

    A leg whose scores are all equal (``sigma`` 0) gives every hit 0.
    """
    mean, sigma = leg.mean_sigma()
    if sigma == 0.0:
        return Normalised([0.0] * len(leg.hits))
    credit = (leg.credit() - mean) / sigma
    return Normalised([(score - mean) / sigma - credit for _, score in leg.hits])


def min_max_norm(leg: LegRun) -> Normalised:
    """``(s - credit) / (best - credit)``: the credit 0, the best hit 1.

    Hits that all equal the credit give 0 (each normalises to 1.0, as does the credit).
    """
    low = leg.credit()
    high = max(score for _, score in leg.hits)
    if high <= low:
        return Normalised([0.0] * len(leg.hits))
    span = high - low
    return Normalised([(score - low) / span for _, score in leg.hits])  # the credit is at 0


def dbsf_norm(leg: LegRun) -> Normalised:
    """``(s - (mean - 3 sigma)) / (6 sigma)`` over the hits, clipped to [0, 1].

    The hits' own statistics, as Qdrant defines DBSF, never the population: against the
    population every top hit of a selective query lies beyond mean + 3 sigma and would clip to
    1.0. Hits of equal scores are a step at their common score: each normalises to 1.0, a
    credit below them (a complete list's floor) to 0.0.
    """
    mean, sigma = leg._replace(population=None).mean_sigma()
    if sigma == 0.0:
        common = min(score for _, score in leg.hits)
        credit = 1.0 if leg.credit() >= common else 0.0
        return Normalised([(1.0 if score >= common else 0.0) - credit for _, score in leg.hits])
    low = mean - 3 * sigma
    width = 6 * sigma
    credit = min(1.0, max(0.0, (leg.credit() - low) / width))
    return Normalised([min(1.0, max(0.0, (s - low) / width)) - credit for _, s in leg.hits])


def rank_norm(leg: LegRun, rrf_k: float = 60) -> Normalised:
    """``1 / (rrf_k + rank)``, ranks from 1, tied scores sharing the mean of their ranks.

    The credit is 0 (a document the leg did not return gets nothing from it), so the values
    need no shift; they are given as divisors (see :class:`Normalised`).
    """
    return Normalised(fractional_ranks(leg.hits, rrf_k), reciprocal=True)


# -------------------------------------------------------------------------- combination
def weighted_sum(
    runs: Sequence[Run],
    weights: Sequence[float],
    normalise: Normaliser,
    *,
    limit: int | None = None,
) -> list[Fused]:
    """``sum_i w_i * n_i(d)`` over the legs that returned ``d``, ``n_i`` from ``normalise``.

    The one combination step of every method. Giving each leg's normalised credit to the
    documents it did not return equals giving it to every document (a constant, left out) plus
    ``value - credit`` to the ones it returned, which is what :class:`Normalised` holds. An
    empty leg adds nothing; a leg weighted 0 adds 0 to its documents (they are still listed).
    ``weights`` are taken as valid (:func:`fuse` checks them; the retriever checks them where
    they enter). ``limit``: only the best ``limit`` documents are ordered and returned (the
    retriever keeps ``rerank_k``); ``None``: all.

    Raises:
        InvalidQueryError: ``limit`` is not a count (:func:`check_count`).
    """
    legs = [as_leg_run(run) for run in runs]
    scores: dict[str, float] = {}
    get = scores.get
    for leg, weight in zip(legs, weights, strict=True):
        if not leg.hits:
            continue
        normalised = normalise(leg)
        if normalised.reciprocal:
            for (doc_id, _), value in zip(leg.hits, normalised.values, strict=True):
                scores[doc_id] = get(doc_id, 0.0) + weight / value
        else:
            for (doc_id, _), value in zip(leg.hits, normalised.values, strict=True):
                scores[doc_id] = get(doc_id, 0.0) + weight * value
    return _order(scores, legs, limit)


# ------------------------------------------------------------------------------ methods
class FusionFunction(Protocol):
    """What every fusion method is: the type of :data:`FUSION_METHODS`' values.

    ``runs`` holds one ranked list per leg, ``weights`` one valid weight per leg (see
    :func:`check_weights`), ``rrf_k`` the RRF constant (the score-based methods ignore it),
    ``limit`` how many of the best to return (``None``: all; see :func:`weighted_sum`).
    """

    def __call__(
        self,
        runs: Sequence[Run],
        weights: Sequence[float],
        /,
        *,
        rrf_k: float = 60,
        limit: int | None = None,
    ) -> list[Fused]:
        """The fused documents, best first (ties: best rank any leg gave, then id)."""
        ...  # pragma: no cover


def rrf(
    runs: Sequence[Run],
    weights: Sequence[float],
    *,
    rrf_k: float = 60,
    limit: int | None = None,
) -> list[Fused]:
    """Weighted Reciprocal Rank Fusion: ``sum_i w_i / (rrf_k + rank_i)``, ranks from 1.

    Tied scores within a leg share the mean of their ranks (:func:`rank_norm`).
    """
    return weighted_sum(runs, weights, lambda leg: rank_norm(leg, rrf_k), limit=limit)


def relative_score(
    runs: Sequence[Run],
    weights: Sequence[float],
    *,
    rrf_k: float = 60,
    limit: int | None = None,
) -> list[Fused]:
    """Min-max normalise each leg between its credit and its best score (:func:`min_max_norm`).

    ``rrf_k`` is accepted for a uniform signature and ignored.
    """
    del rrf_k
    return weighted_sum(runs, weights, min_max_norm, limit=limit)


def zscore(
    runs: Sequence[Run],
    weights: Sequence[float],
    *,
    rrf_k: float = 60,
    limit: int | None = None,
) -> list[Fused]:
    """Standardise each leg's scores, over its population if known (:func:`zscore_norm`).

    ``rrf_k`` is accepted for a uniform signature and ignored. Fused scores can be negative.
    """
    del rrf_k
    return weighted_sum(runs, weights, zscore_norm, limit=limit)


def dbsf(
    runs: Sequence[Run],
    weights: Sequence[float],
    *,
    rrf_k: float = 60,
    limit: int | None = None,
) -> list[Fused]:
    """Normalise each leg with limits mean +- 3 sigma, clipped to [0, 1] (:func:`dbsf_norm`).

    ``rrf_k`` is accepted for a uniform signature and ignored.
    """
    del rrf_k
    return weighted_sum(runs, weights, dbsf_norm, limit=limit)


FUSION_METHODS: dict[str, FusionFunction] = {
    "zscore": zscore,
    "rrf": rrf,
    "relative_score": relative_score,
    "dbsf": dbsf,
}
"""The fusion methods by name (the names :data:`FusionMethod` allows)."""


def fuse(
    method: str, runs: Sequence[Run], weights: Sequence[float], *, rrf_k: float = 60
) -> list[Fused]:
    """Fuse ``runs`` with the method named ``method`` (a key of :data:`FUSION_METHODS`).

    The entry point for callers with unchecked input: it checks the method, the weights and
    ``rrf_k``. The retriever, whose parameters are checked where they enter, calls the method
    of :data:`FUSION_METHODS` directly.

    Raises:
        InvalidQueryError: unknown method, ``weights`` not one finite non-negative number
            per run with a positive sum, or ``rrf_k`` out of range (:func:`check_rrf_k`).
    """
    try:
        function = FUSION_METHODS[method]
    except KeyError:
        msg = f"unknown fusion method {method!r}; expected one of {sorted(FUSION_METHODS)}"
        raise InvalidQueryError(msg) from None
    check_weights(weights, len(runs))
    return function(runs, weights, rrf_k=check_rrf_k(rrf_k))


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


MAX_RRF_K = 1e12
"""``rrf_k`` must be below this: the larger it is, the closer ``1 / (rrf_k + r)`` comes for
neighbouring ranks (equal as floats from about ``1e16``), and RRF stops telling ranks apart."""


def check_rrf_k(rrf_k: object) -> float:
    """Validate the RRF constant: a real number (not a bool), ``0 <= rrf_k < 1e12``.

    The one check of ``rrf_k``, wherever it enters: the ``fusion`` config section, the
    retriever's ``rrf_k`` field, a per-call ``rrf_k`` argument, an evaluation sweep and
    :func:`fuse`. Settings report its message as a ``ConfigError``.

    Returns:
        ``rrf_k`` as a float.

    Raises:
        InvalidQueryError: ``rrf_k`` is not such a number (NaN and infinities are not).
    """
    msg = f"rrf_k must be a finite number >= 0 and < {MAX_RRF_K:g}, got {rrf_k!r}"
    if isinstance(rrf_k, bool) or not isinstance(rrf_k, numbers.Real):
        raise InvalidQueryError(msg)
    try:
        value = float(rrf_k)
    except OverflowError:
        raise InvalidQueryError(msg) from None
    if not 0 <= value < MAX_RRF_K:  # also NaN
        raise InvalidQueryError(msg)
    return value


MAX_K = 1_000_000
"""The most documents a count may ask for (``k``, ``fetch_k``, ``rerank_k``): Chroma takes
``n_results`` as a C long, and a million candidates per leg is far past any useful depth."""


def check_count(name: str, value: object) -> int:
    """Validate a count of documents (``k``, ``fetch_k``, ``rerank_k``): an int from 1 to 1e6.

    The one check of the counts, wherever they enter: the ``fusion`` config section, the
    retriever's fields, per-call arguments, an evaluation sweep. Settings report its message
    as a ``ConfigError``.

    Returns:
        ``value``.

    Raises:
        InvalidQueryError: ``value`` is not an int (a bool is not) from 1 to :data:`MAX_K`.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        msg = f"{name} must be an integer from 1 to {MAX_K:,}, got {value!r}"
        raise InvalidQueryError(msg)
    return value
