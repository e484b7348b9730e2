"""Query-adaptive fusion weights: signals, the logistic share, fitting, and the retriever hook."""

from __future__ import annotations

import math

import pytest
import yaml
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import ConfigError, HybridRetriever
from langchain_hybrid.adaptive import (
    SIGNALS,
    WEIGHT_GRID,
    AdaptiveWeights,
    as_yaml,
    fit_adaptive_weights,
    identifier_count,
    leg_weights,
    query_signals,
    weight_targets,
)
from langchain_hybrid.config import load_config
from langchain_hybrid.fusion import LegRun, Population, zscore

BM25 = LegRun([("a", 6.0), ("b", 2.0)], 10, 0.0, Population(100, 8.0, 40.0))
VECTOR = LegRun([("c", 0.8), ("a", 0.5), ("d", 0.2)], 10)


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("What does error E-4471 mean?", 1),
        ("functools.lru_cache maxsize", 1),
        ("getByIds and HTTPServer", 2),
        ("mail j.brandt@north-assay.eu now", 1),
        ("How big should my rainy-day fund be?", 0),
        ("Why are my night photos blurry?", 0),
        ("KB5034441, CVE-2021-34987.", 2),
    ],
)
def test_identifier_count(query: str, count: int) -> None:
    assert identifier_count(query) == count


def test_query_signals_by_hand() -> None:
    mean, sigma = 8.0 / 100, math.sqrt(40.0 / 100 - (8.0 / 100) ** 2)
    vmean = 0.5
    vsigma = math.sqrt(((0.3) ** 2 + 0 + (0.3) ** 2) / 3)
    signals = query_signals("lru_cache 東京 tower", BM25, VECTOR)
    assert len(signals) == len(SIGNALS)
    assert signals == pytest.approx(
        (
            math.log1p((6.0 - mean) / sigma),
            math.log1p(2),
            (0.8 - vmean) / vsigma,
            0.3,
            1.0,
            1.0,
            math.log1p(3),
        )
    )


def test_empty_legs_give_zero_signals() -> None:
    signals = query_signals("plain words", LegRun([], 10, 0.0), LegRun([], 10))
    assert signals[:4] == (0.0, 0.0, 0.0, 0.0)


def test_share_is_the_logistic_of_the_linear_score() -> None:
    model = AdaptiveWeights(intercept=-1.0, coefficients={"bm25_top_z": 2.0, "cjk": -3.0})
    signals = query_signals("plain words", BM25, VECTOR)
    logit = -1.0 + 2.0 * signals[0]
    assert model.share(signals) == pytest.approx(1 / (1 + math.exp(-logit)))
    bm25_w, vector_w = model.weights("plain words", BM25, VECTOR)
    assert bm25_w + vector_w == pytest.approx(1.0)
    assert bm25_w == pytest.approx(model.share(signals))
    clipped = model.model_copy(update={"min_share": 0.2})
    assert clipped.share((0.0, 0, 0, 0, 0, 50.0, 0)) == pytest.approx(0.2)


def test_a_zero_weight_stays_off_and_no_model_keeps_the_weights() -> None:
    model = AdaptiveWeights(intercept=3.0, coefficients={})
    assert leg_weights(model, "q", (1.0, 0.0), [BM25, VECTOR]) == (1.0, 0.0)
    assert leg_weights(model, "q", (0.0, 1.0), [BM25, VECTOR]) == (0.0, 1.0)
    assert leg_weights(None, "q", (0.3, 0.7), [BM25, VECTOR]) == (0.3, 0.7)
    share = 1 / (1 + math.exp(-3.0))
    assert leg_weights(model, "q", (0.3, 0.7), [BM25, VECTOR]) == pytest.approx((share, 1 - share))


def test_bad_models_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown adaptive fusion signals"):
        load_config({"fusion": {"adaptive": {"intercept": 0.0, "coefficients": {"idf": 1.0}}}})
    with pytest.raises(ConfigError, match="min_share"):
        load_config(
            {"fusion": {"adaptive": {"intercept": 0.0, "coefficients": {}, "min_share": 0.5}}}
        )


def test_weight_targets() -> None:
    flat = [0.5] * len(WEIGHT_GRID)
    assert weight_targets(flat) == (0.5, 0.0)  # every share ties: no information
    bm25_alone = [0.0] * 10 + [1.0]
    assert weight_targets(bm25_alone) == (1.0, 1.0)
    plateau = [0.2, 0.2, 0.6, 0.6, 0.6, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    assert weight_targets(plateau) == pytest.approx((0.3, 0.4))


def test_fit_learns_the_best_share_and_round_trips_through_yaml() -> None:
    # the best BM25 share grows with how far BM25's best hit stands above the collection
    zs = (0.5, 0.8, 1.0, 1.2, 2.8, 3.0, 3.2, 3.5)
    signals = [(z, 2.0, 3.0, 0.1, 0.0, 0.0, 2.0) for z in zs]
    targets = [0.1, 0.1, 0.2, 0.2, 0.8, 0.8, 0.9, 0.9]
    model = fit_adaptive_weights(signals, targets, [1.0] * 8, regularization=10.0)
    assert model.coefficients["bm25_top_z"] > 0
    assert model.share(signals[0]) < 0.3
    assert model.share(signals[-1]) > 0.7
    config = load_config(yaml.safe_load(as_yaml(model)))  # the printed YAML is a valid config
    assert config.fusion.adaptive == model


def test_fit_needs_queries_that_depend_on_the_weights() -> None:
    signals = [(1.0,) * len(SIGNALS)] * 3
    with pytest.raises(ConfigError, match="depends on the weights"):
        fit_adaptive_weights(signals, [0.5, 0.5, 0.5], [0.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="depends on the weights"):
        fit_adaptive_weights(signals, [1.0, 1.0, 1.0], [0.2, 0.1, 0.3])


def test_retriever_fuses_with_the_models_weights(collection_name: str) -> None:
    docs = [
        Document(id="e", page_content="router error E-4471 after a firmware update"),
        Document(id="w", page_content="wifi drops when the laptop is far from the router"),
        Document(id="c", page_content="espresso needs a fine grind"),
        Document(id="t", page_content="tomatoes need deep watering"),
    ]
    # a model that trusts BM25 fully for identifier queries and the vector leg otherwise
    model = AdaptiveWeights(intercept=-4.0, coefficients={"identifiers": 8.0})
    retriever = HybridRetriever.from_documents(
        docs, HashEmbeddings(), collection_name=collection_name, k=4, adaptive=model
    )

    def expected(query: str, weights: tuple[float, float] | None) -> list[tuple[str, float]]:
        bm25 = retriever.search_leg("bm25", query, k=50)
        vector = retriever.search_leg("vector", query, k=50)
        _, population = retriever.bm25.search_population(query, 50)
        runs = [
            LegRun([(h.id, h.score) for h in bm25], 50, 0.0, population),
            LegRun([(h.id, h.score) for h in vector], 50),
        ]
        used = weights or model.weights(query, runs[0], runs[1])
        return [(f.id, f.score) for f in zscore(runs, used)][:4]

    def got(query: str) -> list[tuple[str, float]]:
        return [(str(d.id), d.metadata["hybrid_score"]) for d in retriever.invoke(query)]

    def same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
        return [i for i, _ in a] == [i for i, _ in b] and [s for _, s in a] == pytest.approx(
            [s for _, s in b]
        )

    for query in ("router E-4471", "laptop router wifi"):
        assert same(got(query), expected(query, None))
    assert model.weights("router E-4471", BM25, VECTOR)[0] > 0.98
    assert model.weights("laptop router wifi", BM25, VECTOR)[0] < 0.02
    # the model is part of the cache key: switching it off is seen at once
    retriever.adaptive = None
    assert same(got("laptop router wifi"), expected("laptop router wifi", (0.5, 0.5)))
    assert not same(
        expected("laptop router wifi", None), expected("laptop router wifi", (0.5, 0.5))
    )
