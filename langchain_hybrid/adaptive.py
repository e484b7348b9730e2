"""Query-adaptive fusion weights: the BM25 leg's share per query, from signals the legs computed.

A fixed ``(bm25, vector)`` weight pair is a compromise between query kinds: a bare error code
wants BM25 alone, a paraphrase wants the embedding. :class:`AdaptiveWeights` sets the BM25
leg's share of one query as a logistic function of a handful of signals that the two legs
already produced for it, so it costs a few multiplications and no extra search:

``share = 1 / (1 + exp(-(intercept + sum_i coefficient_i * signal_i)))``, weights
``(share, 1 - share)`` (the query's configured weights are ignored while it is on; a leg that
failed is left out by fusion as with fixed weights).

The signals (:data:`SIGNALS`, all from :func:`query_signals`):

* ``bm25_top_z``: ``log(1 + z)`` of BM25's best hit, z against the leg's population (all its
  scores, :class:`~langchain_hybrid.fusion.Population`): how far the best match stands above
  the collection (a rare identifier: high; common words only: low).
* ``bm25_matched``: ``log(1 + hits)`` of the BM25 list: how many documents share a token with
  the query, up to ``fetch_k`` (a list shorter than ``fetch_k`` holds every match).
* ``vector_top_z``: the vector leg's best hit, standardised over its list.
* ``vector_margin``: cosine (or the store's similarity) of the vector leg's first hit minus its
  second: a clear first hit.
* ``identifiers``: query tokens shaped like identifiers (letters with digits, an inner ``_``
  ``.`` ``@`` ``:`` or ``/``, camel case), as a count.
* ``cjk``: 1.0 if the query holds Chinese, Japanese or Korean characters.
* ``words``: ``log(1 + number of whitespace-separated words)``.

The coefficients are fitted by :func:`fit_adaptive_weights` (scikit-learn's
``LogisticRegression``: ``pip install langchain-hybrid[tune]``) on judged queries: each query
is fused at BM25 shares 0, 0.1, ..., 1; the shares reaching its best nDCG@10 give its target,
and the spread of its nDCG@10 over the shares its importance (a query whose result does not
depend on the weights teaches nothing). A logistic regression with these soft labels estimates
the best share from the signals: per-query fusion weights predicted from query features, as in
learned query-dependent fusion (Sheldon, Shokouhi, Szummer & Craswell, "LambdaMerge", WSDM
2011) and query-performance-prediction weighting of hybrid retrieval. Fitting on "which leg
alone scored higher" instead was measured and is worse (see the README).
``langchain-hybrid eval --tune`` fits it on a collection and prints the YAML; applying it needs
no scikit-learn.
"""

from __future__ import annotations

__all__ = ["AdaptiveWeights"]

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_hybrid.errors import ConfigError
from langchain_hybrid.fusion import LegRun

SIGNALS = (
    "bm25_top_z",
    "bm25_matched",
    "vector_top_z",
    "vector_margin",
    "identifiers",
    "cjk",
    "words",
)
"""Names of the signals, in the order :func:`query_signals` returns them."""

_CJK = re.compile(
    "[\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff"
    "\U00020000-\U0003134f]"
)
_TOKEN_EDGE = re.compile(r"^\W+|\W+$")
_IDENTIFIER = re.compile(
    r"(?=.*\d)(?=.*[^\W\d_])"  # letters with digits: E4471, KB5034441, v1.2
    r"|\w[_.@:/]\w"  # joined by an inner _ . @ : / (not -: rainy-day is a word)
    r"|[a-z][A-Z]"  # camelCase
    r"|^[A-Z]{2,}[a-z]*[A-Z]"  # HTTPServer
)


def identifier_count(query: str) -> int:
    """Whitespace-separated query tokens shaped like identifiers (see the module docstring)."""
    count = 0
    for raw in query.split():
        token = _TOKEN_EDGE.sub("", raw)
        if token and _IDENTIFIER.search(token):
            count += 1
    return count


def _top_z(run: LegRun) -> float:
    if not run.hits:
        return 0.0
    mean, sigma = run.mean_sigma()
    return 0.0 if sigma == 0.0 else (run.hits[0][1] - mean) / sigma


def query_signals(query: str, bm25: LegRun, vector: LegRun) -> tuple[float, ...]:
    """The signals of :data:`SIGNALS` for one query and its two legs' runs (in that order)."""
    hits = vector.hits
    margin = hits[0][1] - hits[1][1] if len(hits) > 1 else 0.0
    return (
        math.log1p(max(_top_z(bm25), 0.0)),
        math.log1p(len(bm25.hits)),
        _top_z(vector),
        margin,
        float(identifier_count(query)),
        1.0 if _CJK.search(query) else 0.0,
        math.log1p(len(query.split())),
    )


class AdaptiveWeights(BaseModel):
    """A fitted logistic model of the BM25 leg's weight per query (``fusion.adaptive``).

    Attributes:
        intercept: the model's intercept.
        coefficients: one coefficient per signal name of :data:`SIGNALS`; a missing name
            counts 0.
        min_share: the BM25 share is clipped to ``[min_share, 1 - min_share]``, so neither
            leg is ever switched off (a leg weighted 0 still ran; clipping keeps its votes).

    Example:
        ```python
        from langchain_hybrid.adaptive import AdaptiveWeights

        model = AdaptiveWeights(intercept=-1.0, coefficients={"bm25_top_z": 0.8})
        bm25_share = model.share((2.0, 3.0, 4.0, 0.1, 0.0, 0.0, 1.5))
        ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float = Field(allow_inf_nan=False)
    coefficients: dict[str, float]
    min_share: float = Field(default=0.0, ge=0.0, lt=0.5)

    @field_validator("coefficients")
    @classmethod
    def _known(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(SIGNALS))
        if unknown:
            msg = f"unknown adaptive fusion signals {unknown}; expected names of {list(SIGNALS)}"
            raise ValueError(msg)
        if not all(math.isfinite(v) for v in value.values()):
            msg = "adaptive fusion coefficients must be finite numbers"
            raise ValueError(msg)
        return value

    def share(self, signals: Sequence[float]) -> float:
        """The BM25 leg's weight for a query with these signals (the vector leg gets the rest)."""
        logit = self.intercept + sum(
            self.coefficients.get(name, 0.0) * value
            for name, value in zip(SIGNALS, signals, strict=True)
        )
        share = 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0  # noqa: PLR2004
        return min(max(share, self.min_share), 1.0 - self.min_share)

    def weights(self, query: str, bm25: LegRun, vector: LegRun) -> tuple[float, float]:
        """``(bm25, vector)`` weights for one query, from its legs' runs."""
        share = self.share(query_signals(query, bm25, vector))
        if share <= 0.0:
            return (0.0, 1.0)
        if share >= 1.0:
            return (1.0, 0.0)
        return (share, 1.0 - share)


WEIGHT_GRID = tuple(i / 10 for i in range(11))
"""BM25 shares at which :func:`weight_targets` scores each training query's fusion."""


def weight_targets(utilities: Sequence[float]) -> tuple[float, float]:
    """A query's target BM25 share and its importance, from its metric at :data:`WEIGHT_GRID`.

    The target is the mean of the shares that reach the query's best metric; the importance
    is how much the share matters for it (best minus worst metric; 0: the query cannot tell).
    """
    best = max(utilities)
    winners = [share for share, u in zip(WEIGHT_GRID, utilities, strict=True) if u == best]
    return sum(winners) / len(winners), best - min(utilities)


def fit_adaptive_weights(
    signals: Sequence[Sequence[float]],
    targets: Sequence[float],
    importance: Sequence[float],
    *,
    regularization: float = 1.0,
    min_share: float = 0.0,
) -> AdaptiveWeights:
    """Fit :class:`AdaptiveWeights` on judged queries (needs scikit-learn).

    A logistic regression with soft labels: each query counts as a BM25 example with weight
    ``importance * target`` and as a vector example with weight ``importance * (1 - target)``,
    so the fitted share estimates the best share given the signals (cross-entropy against the
    targets, L2-regularised).

    Args:
        signals: one :func:`query_signals` tuple per query.
        targets: per query, its best BM25 share (:func:`weight_targets`).
        importance: per query, how much the share matters (:func:`weight_targets`); queries
            at 0 are left out.
        regularization: inverse L2 strength ``C`` of ``LogisticRegression``.
        min_share: stored in the model (see :class:`AdaptiveWeights`).

    Raises:
        ConfigError: scikit-learn is missing, or no query's result depends on the weights,
            or every informative query wants the same leg alone.
    """
    try:
        import numpy as np  # noqa: PLC0415
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    except ImportError as e:
        msg = "fitting adaptive fusion needs scikit-learn: pip install 'langchain-hybrid[tune]'"
        raise ConfigError(msg) from e
    rows = [(s, t, w) for s, t, w in zip(signals, targets, importance, strict=True) if w > 0.0]
    bm25_mass = sum(w * t for _, t, w in rows)
    vector_mass = sum(w * (1.0 - t) for _, t, w in rows)
    if bm25_mass <= 0.0 or vector_mass <= 0.0:
        msg = (
            "adaptive fusion needs judged queries whose result depends on the weights, some "
            f"better with more BM25 and some with more vector ({len(rows)} informative queries)"
        )
        raise ConfigError(msg)
    x = np.asarray([s for s, _, _ in rows], dtype=float)
    model = LogisticRegression(C=regularization, max_iter=2000)
    model.fit(
        np.vstack([x, x]),
        np.r_[np.ones(len(rows)), np.zeros(len(rows))],
        sample_weight=np.r_[[w * t for _, t, w in rows], [w * (1.0 - t) for _, t, w in rows]],
    )
    return AdaptiveWeights(
        intercept=round(float(model.intercept_[0]), 4),
        coefficients={
            name: round(float(c), 4) for name, c in zip(SIGNALS, model.coef_[0], strict=True)
        },
        min_share=min_share,
    )


def as_yaml(model: AdaptiveWeights) -> str:
    """The ``fusion.adaptive`` YAML section of a fitted model."""
    lines = ["fusion:", "  adaptive:", f"    intercept: {model.intercept}", "    coefficients:"]
    lines += [f"      {name}: {value}" for name, value in model.coefficients.items()]
    lines.append(f"    min_share: {model.min_share}")
    return "\n".join(lines) + "\n"


def from_mapping(value: Mapping[str, Any]) -> AdaptiveWeights:
    """An :class:`AdaptiveWeights` from a mapping (a YAML section), as a typed error.

    Raises:
        ConfigError: the mapping is not a valid model.
    """
    try:
        return AdaptiveWeights.model_validate(value)
    except ValueError as e:
        msg = f"invalid fusion.adaptive: {e}"
        raise ConfigError(msg) from e


def leg_weights(
    model: AdaptiveWeights | None,
    query: str,
    weights: tuple[float, float],
    runs: Sequence[LegRun],
) -> tuple[float, float]:
    """The weights fusion uses for one query: ``weights``, or the model's when both legs run.

    A leg weighted 0 is not run, and stays off: the model only splits the weight between two
    running legs (``runs``: the BM25 run, then the vector run).
    """
    if model is None or min(weights) <= 0.0:
        return weights
    return model.weights(query, runs[0], runs[1])
