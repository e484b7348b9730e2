"""Tests of the BM25 index: scores against references, incremental writes, search, tokenizer,
persistence and input validation.

Reference scores come from bm25s (``method="lucene"``, float64) and from a naive pure-Python
transcription of the formula in the module docstring of ``langchain_hybrid.bm25``. Both get the
very same tokens as our index: the index uses a tokenizer that splits on whitespace and changes
nothing (``IDENTITY``), so ``BM25Index.scores(" ".join(tokens))`` scores exactly ``tokens``.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pytest
from helpers import IDENTITY
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from langchain_hybrid import bm25 as bm25_module
from langchain_hybrid._tokenize import TokenizerConfig
from langchain_hybrid.bm25 import BM25Hit, BM25Index, BM25Params, check_ids
from langchain_hybrid.errors import IndexCorruptError, InvalidDocumentsError
from langchain_hybrid.filters import parse_filter


# ------------------------------------------------------------------------------ helpers
def zipf_vocabulary(size: int, exponent: float) -> tuple[list[str], np.ndarray]:
    words = [f"t{i}" for i in range(size)]
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return words, weights / weights.sum()


def zipf_docs(
    rng: np.random.Generator, n_docs: int, *, vocab: int = 800, min_len: int = 1, max_len: int = 40
) -> list[list[str]]:
    words, p = zipf_vocabulary(vocab, 1.1)
    lengths = rng.integers(min_len, max_len + 1, size=n_docs)
    return [[words[j] for j in rng.choice(vocab, size=int(n), p=p)] for n in lengths]


def zipf_queries(rng: np.random.Generator, n: int, *, vocab: int = 800) -> list[list[str]]:
    """Queries mixing frequent, rare, repeated and unknown tokens (always non-empty)."""
    words, p = zipf_vocabulary(vocab, 1.1)
    queries = []
    for _ in range(n):
        frequent = [words[j] for j in rng.choice(vocab, size=int(rng.integers(1, 4)), p=p)]
        n_rare = int(rng.integers(0, 3))
        rare = [words[int(j)] for j in rng.integers(vocab // 2, vocab, size=n_rare)]
        query = frequent + rare
        if rng.random() < 0.3:
            query.append(query[0])  # a repeated query token counts twice
        if rng.random() < 0.3:
            query.insert(int(rng.integers(0, len(query) + 1)), "unknown-token")
        queries.append(query)
    return queries


def naive_scores(corpus: Sequence[Sequence[str]], query: Sequence[str], k1: float, b: float):
    """The module docstring's formula, term by term, in plain Python."""
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    df = Counter(t for d in corpus for t in set(d))
    out = []
    for doc in corpus:
        tf = Counter(doc)
        score = 0.0
        for t in query:  # "sum over query tokens": a repeated token counts again
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf[t] / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return out


def build(
    corpus: Sequence[Sequence[str]], params: BM25Params | None = None, prefix: str = "d"
) -> BM25Index:
    index = BM25Index(params or BM25Params(tokenizer=IDENTITY))
    ids = [f"{prefix}{i}" for i in range(len(corpus))]
    index.add(ids, [" ".join(d) for d in corpus], tokens=[list(d) for d in corpus])
    return index


def scores_by_id(index: BM25Index, query: str) -> dict[str, float]:
    """Per-document scores of live documents, keyed by id; dead slots must score 0."""
    scores = index.scores(query)
    assert len(scores) == len(index._docs)
    alive = np.asarray(index._alive)
    assert np.all(scores[~alive] == 0.0)
    return {index._docs.id(s): float(scores[s]) for s in np.flatnonzero(alive)}


def assert_same_hits(got: list[BM25Hit], expected: list[BM25Hit], tol: float = 1e-9) -> None:
    assert [(h.id, h.text, h.metadata) for h in got] == [
        (h.id, h.text, h.metadata) for h in expected
    ]
    np.testing.assert_allclose(
        [h.score for h in got], [h.score for h in expected], rtol=0, atol=tol
    )


# ------------------------------------------------------------- scores == reference impls
@settings(max_examples=20, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k1=st.floats(0.0, 3.0),
    b=st.floats(0.0, 1.0),
)
def test_scores_equal_bm25s(seed: int, k1: float, b: float) -> None:
    rng = np.random.default_rng(seed)
    corpus = zipf_docs(rng, 300)
    ours = build(corpus, BM25Params(k1=k1, b=b, tokenizer=IDENTITY))
    reference = bm25s.BM25(method="lucene", k1=k1, b=b, dtype="float64")
    reference.index(corpus, show_progress=False)
    matched = 0
    for query in zipf_queries(rng, 12):
        expected = reference.get_scores(query)
        got = ours.scores(" ".join(query))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        matched += int(np.count_nonzero(expected))
    assert matched > 0  # the comparison is not between two arrays of zeros


@settings(max_examples=30, deadline=None, database=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k1=st.one_of(st.just(0.0), st.floats(0.0, 3.0)),
    b=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
)
def test_scores_equal_naive_formula(seed: int, k1: float, b: float) -> None:
    rng = np.random.default_rng(seed)
    corpus = zipf_docs(rng, 200, min_len=0, max_len=30)  # includes empty documents
    ours = build(corpus, BM25Params(k1=k1, b=b, tokenizer=IDENTITY))
    for query in zipf_queries(rng, 8):
        expected = naive_scores(corpus, query, k1, b)
        got = ours.scores(" ".join(query))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        # search ranks by exactly those scores: the top-10 scores are the reference's top 10
        top = ours.search(" ".join(query), k=10)
        best = sorted((s for s in expected if s > 0), reverse=True)[:10]
        np.testing.assert_allclose([h.score for h in top], best, rtol=0, atol=1e-9)


def test_idf_is_always_positive_even_for_a_term_in_every_document() -> None:
    index = build([["common", "a"], ["common", "b"], ["common"]])
    scores = index.scores("common")
    assert np.all(scores > 0)
    assert scores == pytest.approx(
        naive_scores([["common", "a"], ["common", "b"], ["common"]], ["common"], 0.9, 0.4)
    )


# --------------------------------------------------------- incremental equals rebuild
Live = dict[str, tuple[list[str], dict[str, Any]]]


def assert_equals_rebuild(
    index: BM25Index, live: Live, queries: list[str], params: BM25Params
) -> None:
    fresh = BM25Index(params)
    if live:
        order = sorted(live)  # a different insertion order: results must not depend on it
        fresh.add(
            order,
            [" ".join(live[i][0]) for i in order],
            [live[i][1] for i in order],
            tokens=[live[i][0] for i in order],
        )
    assert len(index) == len(fresh) == len(live)
    assert set(index.ids) == set(live)
    assert index.avgdl == pytest.approx(fresh.avgdl, abs=1e-9)
    where = parse_filter({"grp": {"$in": ["a", "b"]}})
    order = sorted(live)
    for query in queries:
        ours, theirs = scores_by_id(index, query), scores_by_id(fresh, query)
        assert ours.keys() == theirs.keys()
        np.testing.assert_allclose(
            [ours[i] for i in order], [theirs[i] for i in order], rtol=0, atol=1e-9
        )
        for k in (1, 10, 200):
            assert_same_hits(index.search(query, k), fresh.search(query, k))
        got = index.search(query, 10, where)
        assert_same_hits(got, fresh.search(query, 10, where))
        assert all(h.metadata["grp"] in {"a", "b"} for h in got)


def test_incremental_equals_rebuild_through_compaction_and_tail() -> None:
    rng = np.random.default_rng(1234)
    params = BM25Params(k1=1.2, b=0.75, tokenizer=IDENTITY)
    index = BM25Index(params)
    live: Live = {}
    queries = [" ".join(q) for q in zipf_queries(rng, 6, vocab=3000)]
    counter = iter(range(10**9))
    seen = {"compacted": False, "tail": False, "main_rebuilt": False}

    def add(n_new: int, n_upsert: int) -> None:
        upsert = list(rng.choice(sorted(live), size=n_upsert, replace=False)) if n_upsert else []
        ids = [f"doc{next(counter)}" for _ in range(n_new)] + [str(i) for i in upsert]
        docs = zipf_docs(rng, len(ids), vocab=3000, min_len=0, max_len=30)
        metas = [{"grp": str(rng.choice(["a", "b", "c"]))} for _ in ids]
        slots = len(index._docs)
        index.add(ids, [" ".join(d) for d in docs], metas)
        seen["compacted"] |= len(index._docs) < slots + len(ids)
        live.update({i: (d, m) for i, d, m in zip(ids, docs, metas, strict=True)})

    def delete(n: int) -> None:
        gone = [str(i) for i in rng.choice(sorted(live), size=n, replace=False)]
        slots = len(index._docs)
        assert index.delete([*gone, "never-added"]) == n
        seen["compacted"] |= len(index._docs) < slots
        for doc_id in gone:
            del live[doc_id]

    def check() -> None:
        main_before = index._main_upto
        assert_equals_rebuild(index, live, queries, params)
        seen["tail"] |= index._tail is not None
        seen["main_rebuilt"] |= 0 < main_before < index._main_upto

    # 1: a first query builds the main term-major structure, later adds go to the tail
    add(500, 0)
    check()
    for _ in range(5):
        add(500, 0)
        check()
    # 2: deletes and upserts until more than 1024 slots (and a quarter of them) are dead
    slots_before = len(index._docs)
    for _ in range(4):
        delete(250)
        add(0, 60)
        check()
    assert len(index._docs) < slots_before + 240  # compaction dropped dead slots
    # 3: > 4096 documents added after queries: the tail grows until the main is rebuilt
    for _ in range(7):
        add(700, 40)
        delete(30)
        check()
    assert seen == {"compacted": True, "tail": True, "main_rebuilt": True}
    # 4: delete everything, then start again
    delete(len(live))
    check()
    assert all(index.search(q, 10) == [] for q in queries)
    add(50, 0)
    check()


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.lists(
                st.tuples(
                    st.sampled_from([f"id{i}" for i in range(12)]),
                    st.lists(st.sampled_from(["w0", "w1", "w2", "w3", "w4", "w5"]), max_size=6),
                ),
                min_size=1,
                max_size=5,
                unique_by=lambda t: t[0],
            ),
        ),
        # unique ids: a repeated id in one delete is test_delete_with_a_repeated_id's subject
        st.tuples(
            st.just("delete"),
            st.lists(st.sampled_from([f"id{i}" for i in range(14)]), max_size=4, unique=True),
        ),
        st.tuples(st.just("clear"), st.just([])),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None, database=None)
@given(ops=operations, k1=st.floats(0.0, 2.0), b=st.floats(0.0, 1.0))
def test_incremental_equals_rebuild_random_operations(
    ops: list[tuple[str, list[Any]]], k1: float, b: float
) -> None:
    params = BM25Params(k1=k1, b=b, tokenizer=IDENTITY)
    index = BM25Index(params)
    live: Live = {}
    queries = ["w0", "w1 w2", "w3 w3 w4", "w5 w0 w1 w2 w3 w4", "nothing"]
    for op, args in ops:
        generation = index.generation
        if op == "add":
            ids = [doc_id for doc_id, _ in args]
            metas = [{"grp": "a" if len(toks) % 2 else "c"} for _, toks in args]
            index.add(ids, [" ".join(toks) for _, toks in args], metas)
            live.update({i: (t, m) for (i, t), m in zip(args, metas, strict=True)})
            assert index.generation == generation + 1
        elif op == "delete":
            expected = len([i for i in args if i in live])
            assert index.delete(args) == expected
            for doc_id in args:
                live.pop(doc_id, None)
            assert index.generation == generation + (expected > 0)
        else:
            index.clear()
            live.clear()
        assert_equals_rebuild(index, live, queries, params)


# ----------------------------------------------------------------------------- search
@pytest.fixture
def fruit() -> BM25Index:
    index = BM25Index()
    index.add(
        ["d1", "d2", "d3", "d4", "d5"],
        [
            "apple apple apple banana",
            "apple banana cherry date elderberry fig grape",
            "apple",
            "banana cherry",
            "apples and more apples, nothing else",
        ],
        [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}],
    )
    return index


def test_search_returns_top_k_by_score(fruit: BM25Index) -> None:
    all_hits = fruit.search("apple", k=10)
    assert {h.id for h in all_hits} == {"d1", "d2", "d3", "d5"}
    scores = [h.score for h in all_hits]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    expected = scores_by_id(fruit, "apple")
    assert {h.id: h.score for h in all_hits} == {i: s for i, s in expected.items() if s > 0}
    top2 = fruit.search("apple", k=2)
    assert top2 == all_hits[:2]
    assert top2[0].text == fruit.get([top2[0].id])[0].text  # type: ignore[union-attr]
    hit = next(h for h in all_hits if h.id == "d3")
    assert (hit.text, hit.metadata) == ("apple", {"n": 3})


def test_search_ties_broken_by_id() -> None:
    index = BM25Index()
    index.add(["c", "a", "d", "b"], ["same words here"] * 4)
    results = index.search("words", k=4)
    assert [h.id for h in results] == ["a", "b", "c", "d"]
    assert len({h.score for h in results}) == 1
    assert [h.id for h in index.search("words", k=2)] == ["a", "b"]
    index.add(["e"], ["words words"])  # a better document goes first
    assert [h.id for h in index.search("words", k=3)] == ["e", "a", "b"]


@pytest.mark.parametrize("n", [1, 7, 4095, 4096, 27_000, 100_003])
def test_kth_largest_is_exact_on_every_shape(n: int) -> None:
    rng = np.random.default_rng(n)
    shapes = {
        "spread": rng.random(n),
        "ties": np.round(rng.random(n) ** 3 * 20, 1),
        "equal": np.full(n, 2.5),
        "sorted": np.sort(rng.random(n)),  # a strided sample of a sorted array is skewed
        "one high": np.concatenate([np.zeros(n - 1), [9.0]]),
        # the high values exactly where the strided sample looks: the threshold overshoots
        "aliased": (np.arange(n) % max(n // 1024, 1) == 0).astype(np.float64),
    }
    for shape, values in shapes.items():
        for k in sorted({min(k, n) for k in (1, 2, 10, 50, n // 3 or 1, n - 1 or 1, n)}):
            expected = float(np.sort(values)[::-1][k - 1])
            assert bm25_module._kth_largest(values, k) == expected, (shape, k)


def test_rank_is_the_top_k_of_every_score_with_ties_at_the_cut() -> None:
    # a small vocabulary and short texts give many equal scores; deletes leave dead slots
    rng = np.random.default_rng(20261204)
    words = [f"w{i}" for i in range(12)]
    ids = [f"doc-{i:03d}" for i in rng.permutation(300)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 4)))) for _ in ids]
    index = BM25Index()
    index.add(ids, texts, [{"even": i % 2 == 0} for i in range(len(ids))])
    index.delete(ids[::7])
    live = {i: n % 2 == 0 for n, i in enumerate(ids) if n % 7}
    cut_in_a_tie = 0
    for n in range(60):
        query = " ".join(rng.choice(words, size=int(rng.integers(1, 3))))
        k = int(rng.integers(1, 40))
        where = parse_filter({"even": True}) if n % 3 == 0 else None
        scores = {i: s for i, s in scores_by_id(index, query).items() if where is None or live[i]}
        expected = sorted(((i, s) for i, s in scores.items() if s > 0), key=lambda t: (-t[1], t[0]))
        ranked, population = index.rank(query, k, where)
        assert [(i, s) for i, s, _ in ranked] == expected[:k], (query, k)
        assert [index._docs.id(slot) for i, _, slot in ranked] == [i for i, _, _ in ranked]
        assert population.size == len(scores)
        assert population.total == pytest.approx(sum(scores.values()))
        assert population.total_sq == pytest.approx(sum(s * s for s in scores.values()))
        if len(expected) > k and expected[k - 1][1] == expected[k][1]:
            cut_in_a_tie += 1
    assert cut_in_a_tie >= 10


def test_search_k_larger_than_matches(fruit: BM25Index) -> None:
    results = fruit.search("cherry", k=50)
    assert sorted(h.id for h in results) == ["d2", "d4"]


def test_search_without_known_tokens_is_empty(fruit: BM25Index) -> None:
    assert fruit.search("kiwi", k=5) == []
    assert fruit.search("the and of", k=5) == []  # stopwords only
    assert fruit.search("", k=5) == []
    assert fruit.search("!!! ???", k=5) == []
    assert BM25Index().search("apple", k=5) == []


def test_delete_with_a_repeated_id(fruit: BM25Index) -> None:
    generation = fruit.generation
    assert fruit.delete(["d1", "d1", "unknown"]) == 1
    assert "d1" not in fruit
    assert len(fruit) == 4
    assert fruit.generation == generation + 1
    assert {h.id for h in fruit.search("apple", k=10)} == {"d2", "d3", "d5"}


def test_search_never_returns_deleted_docs(fruit: BM25Index) -> None:
    fruit.search("apple", k=5)  # build the query structures before deleting
    assert fruit.delete(["d1", "d3"]) == 2
    assert {h.id for h in fruit.search("apple", k=10)} == {"d2", "d5"}
    assert "d1" not in fruit
    assert fruit.get(["d1"]) == [None]
    assert fruit.delete(["d2", "d5"]) == 2
    assert fruit.search("apple", k=10) == []
    assert [h.id for h in fruit.search("banana", k=10)] == ["d4"]


def test_search_filter_applies_before_top_k() -> None:
    index = BM25Index()
    ids, texts, metas = [], [], []
    for i in range(10):  # high-scoring documents, not matching the filter
        ids.append(f"hi{i}")
        texts.append("apple " * (5 + i))
        metas.append({"grp": "hi"})
    for i in range(10):  # low-scoring documents, matching it
        ids.append(f"lo{i}")
        texts.append("apple " + "filler words padding text " * (i + 1))
        metas.append({"grp": "lo", "rank": i})
    index.add(ids, texts, metas)
    unfiltered = index.search("apple", k=3)
    assert all(h.id.startswith("hi") for h in unfiltered)
    where = parse_filter({"grp": "lo"})
    results = index.search("apple", k=3, where=where)
    # the three best "lo" documents are the shortest ones
    assert [h.id for h in results] == ["lo0", "lo1", "lo2"]
    assert all(h.metadata["grp"] == "lo" for h in results)
    assert len(index.search("apple", k=50, where=where)) == 10
    where = parse_filter({"$and": [{"grp": "lo"}, {"rank": {"$gte": 8}}]})
    assert [h.id for h in index.search("apple", k=5, where=where)] == ["lo8", "lo9"]
    assert index.search("apple", k=5, where=parse_filter({"grp": "none"})) == []
    assert index.search("filler", k=5, where=parse_filter({"grp": "hi"})) == []


def test_accented_query_matches_plain_document() -> None:
    index = BM25Index()
    index.add(["fr", "en", "gr"], ["Un café crème", "A cafe latte", "Καλημέρα κόσμε"])
    assert {h.id for h in index.search("CAFÉ", k=5)} == {"fr", "en"}
    assert [h.id for h in index.search("καλημερα", k=5)] == ["gr"]


@pytest.mark.parametrize(
    "kwargs",
    [{"k1": -0.1}, {"b": 1.5}, {"b": -0.1}, {"k1": "high"}, {"typo": 1}],
)
def test_bm25_params_reject(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BM25Params(**kwargs)


def test_reads_never_race_with_a_compacting_delete() -> None:
    """Readers see one layout of the index while deletes compact it (renumbering every slot).

    Each document's text names its id, so a text read from a slot of another layout shows up
    as another document's text under the id asked for; an ``IndexError`` or a division by zero
    escapes the reader. Every cycle adds 1,100 documents to 3,000 and deletes them again, which
    compacts (more than 1,024 dead slots and a quarter of all slots) while the readers run; a
    tiny switch interval makes the threads interleave inside the reads.
    """
    index = BM25Index(BM25Params(tokenizer=TokenizerConfig(stemmer=None, stopwords=None)))
    base = [f"d{i}" for i in range(3_000)]
    index.add(base, [f"text of {doc_id}" for doc_id in base])
    stop = threading.Event()
    problems: list[str] = []
    cycles = 60

    def read(offset: int) -> int:
        reads = 0
        while not stop.is_set():
            wanted = [*base[offset::50], *(f"c{c}-{i}" for c in range(cycles) for i in (0, 900))]
            try:
                problems.extend(
                    f"{hit.id} read as {hit.text!r}"
                    for hit in index.get(wanted)
                    if hit is not None and hit.text != f"text of {hit.id}"
                )
                live = index.ids
                if len(live) != len(set(live)) or not index.avgdl > 0 or len(index) < 3_000:
                    problems.append("inconsistent ids, avgdl or length")
            except Exception as e:  # noqa: BLE001 - any exception is the defect
                problems.append(f"{type(e).__name__}: {e}")
            reads += 1
        return reads

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            readers = [pool.submit(read, offset) for offset in range(3)]
            for c in range(cycles):
                churn = [f"c{c}-{i}" for i in range(1_100)]
                index.add(churn, [f"text of {doc_id}" for doc_id in churn])
                index.delete(churn)
            stop.set()
            total = sum(f.result() for f in readers)
    finally:
        sys.setswitchinterval(interval)
    assert total > 0
    assert not problems, problems[:5]
    assert len(index) == 3_000
    assert len(index._docs) < 3_000 + 2_200, "the deletes compacted"


# -------------------------------------------------------------------------- persistence
def sample_index() -> BM25Index:
    index = BM25Index(BM25Params(k1=1.3, b=0.6, tokenizer=TokenizerConfig(stemmer="porter")))
    rng = np.random.default_rng(5)
    corpus = zipf_docs(rng, 120, vocab=200)
    index.add(
        [f"doc{i}" for i in range(len(corpus))],
        [" ".join(d) + " Café" * (i % 3) for i, d in enumerate(corpus)],
        [{"grp": ["a", "b", "c"][i % 3], "n": i, "tags": ["x", str(i % 4)]} for i in range(120)],
    )
    index.delete([f"doc{i}" for i in range(0, 120, 7)])
    index.add(["doc1", "new"], ["t1 t2 t3 replaced", "t4 t4 brand new"], [{"grp": "z"}, None])
    return index


QUERIES = ["t1", "t2 t3 t5", "t0 t0 t9 t40", "cafe", "replaced", "brand new t4", "unknown"]
FILTERS = [None, {"grp": "a"}, {"n": {"$gte": 60}}, {"tags": {"$contains": "2"}}]


def results_of(index: BM25Index) -> list[list[BM25Hit]]:
    return [index.search(q, 15, parse_filter(where)) for q in QUERIES for where in FILTERS]


def saved(tmp_path: Path) -> tuple[Path, BM25Index, list[list[BM25Hit]]]:
    index = sample_index()
    expected = results_of(index)
    index.save(tmp_path / "idx")
    return tmp_path / "idx", index, expected


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = sample_index()
    # everything to compare is captured before saving, so this test is about the files only
    expected = results_of(index)
    expected_scores = {q: scores_by_id(index, q) for q in QUERIES}
    some = ["doc1", "new", "doc0", "doc2"]
    state = (index.params, index.generation, len(index), index.ids, index.get(some))
    vocabulary_size, avgdl = index.vocabulary_size, index.avgdl
    index.save(tmp_path / "idx")

    loaded = BM25Index.load(tmp_path / "idx")
    assert results_of(loaded) == expected
    assert sum(len(r) for r in expected) > 50  # the queries do find documents
    assert (loaded.params, loaded.generation, len(loaded), loaded.ids, loaded.get(some)) == state
    assert loaded.params.tokenizer == TokenizerConfig(stemmer="porter")
    assert (loaded.params.k1, loaded.params.b) == (1.3, 0.6)
    assert loaded.tokenizer("Running") == ["run"]
    assert len(loaded) == 120 - 18 + 1
    assert loaded.vocabulary_size == vocabulary_size
    assert loaded.avgdl == avgdl
    for query in QUERIES:
        assert scores_by_id(loaded, query) == pytest.approx(expected_scores[query], abs=1e-12)
    # the loaded index keeps working as an index
    loaded.add(["later"], ["t1 t1 t1"])
    assert loaded.search("t1", 1)[0].id == "later"


def test_save_leaves_the_index_searchable(tmp_path: Path) -> None:
    index = sample_index()  # has deleted slots, so save compacts
    before = results_of(index)  # builds the query structures before the save
    index.save(tmp_path / "idx")
    assert results_of(index) == before
    index.add(["after"], ["t1 zebra"])
    assert [h.id for h in index.search("zebra", 5)] == ["after"]
    assert "after" in {h.id for h in index.search("t1", len(index))}


def test_saved_files_are_json_and_npy_without_pickle(tmp_path: Path) -> None:
    path, index, _ = saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    gen = index.generation
    assert manifest["format"] == "langchain-hybrid-bm25"
    assert manifest["format_version"] == 3
    assert manifest["generation"] == gen
    assert manifest["documents"] == len(index)
    assert manifest["params"] == index.params.model_dump(mode="json")
    names = _data_files(manifest)
    assert set(names) == {"vocab", "ids", "texts", "metas", "log", *ARRAY_KINDS}
    token = names["vocab"].split("-")[2].split(".")[0]
    for name, meta in manifest["files"].items():
        data = (path / name).read_bytes()
        assert len(data) == meta["bytes"]
        if name != manifest["log"]:
            assert hashlib.sha256(data).hexdigest() == meta["sha256"]
        assert name.startswith(f"{name.split('-')[0]}-{gen}-{token}.")  # one segment, new names
    assert (path / manifest["log"]).read_bytes() == b""  # a fresh segment has an empty log
    vocab = json.loads((path / names["vocab"]).read_text(encoding="utf-8"))
    assert len(vocab) == index.vocabulary_size

    def cut(kind: str) -> list[bytes]:  # a blob cut at its byte offsets
        blob = (path / names[kind]).read_bytes()
        ptr = np.load(path / names[f"{kind[:-1]}_ptr"], allow_pickle=False)
        return [blob[a:b] for a, b in itertools.pairwise(ptr.tolist())]

    stored = index.get(index.ids)
    assert [i.decode() for i in cut("ids")] == index.ids
    assert [t.decode() for t in cut("texts")] == [h.text for h in stored if h]
    assert [json.loads(m) if m else {} for m in cut("metas")] == [h.metadata for h in stored if h]
    hashes = np.load(path / names["id_hashes"], allow_pickle=False)
    order = np.load(path / names["id_order"], allow_pickle=False)
    assert bool(np.all(hashes[1:] >= hashes[:-1]))
    assert sorted(order.tolist()) == list(range(len(index)))
    arrays = {kind: np.load(path / names[kind], allow_pickle=False) for kind in ARRAY_KINDS}
    assert all(a.dtype.kind in "iuf" and a.ndim == 1 for a in arrays.values())
    assert len(arrays["doc_ptr"]) == len(index) + 1
    assert len(arrays["csc_ptr"]) == index.vocabulary_size + 1
    assert np.array_equal(np.diff(arrays["csc_ptr"]), arrays["df"])
    assert sorted(arrays["csc_slots"]) == sorted(
        np.repeat(np.arange(len(index)), np.diff(arrays["doc_ptr"]))
    )


ARRAY_KINDS = (
    *("id_ptr", "id_hashes", "id_order", "text_ptr", "meta_ptr"),
    *("doc_ptr", "terms", "tfs", "dl", "df", "csc_ptr", "csc_slots", "csc_tfs"),
)


def _data_files(manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's files by kind (vocab, docs, log, and each array)."""
    return {name.split("-")[0]: name for name in manifest["files"]}


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text(encoding="utf-8")))))


def _rewrite_with_checksum(path: Path, name: str, data: bytes) -> None:
    """Replace a data file *and* its manifest size and checksum: only content checks are left."""
    (path / name).write_bytes(data)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_text(json.dumps(manifest))


def _name(path: Path, prefix: str) -> str:
    return next(p.name for p in path.iterdir() if p.name.startswith(prefix))


def _truncate(prefix: str) -> Callable[[Path], None]:
    def truncate(path: Path) -> None:
        f = path / _name(path, prefix)
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])

    return truncate


def _edit_texts(path: Path) -> None:
    f = path / _name(path, "texts-")
    f.write_bytes(f.read_bytes().replace(b"replaced", b"REPLACED"))


def _drop_a_doc_keeping_checksum(path: Path) -> None:
    name = _name(path, "ids-")
    data = (path / name).read_bytes()
    _rewrite_with_checksum(path, name, data[:-1])  # the id offsets no longer span the file


def _truncate_keeping_checksum(path: Path) -> None:
    name = _name(path, "csc_slots-")
    data = (path / name).read_bytes()
    _rewrite_with_checksum(path, name, data[: len(data) // 2])


def _rewrite_array(prefix: str, edit: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def rewrite(path: Path) -> None:
        name = _name(path, prefix)
        out = io.BytesIO()
        np.save(out, edit(np.load(path / name, allow_pickle=False)), allow_pickle=False)
        _rewrite_with_checksum(path, name, out.getvalue())

    return rewrite


def _set_manifest(key: str, value: object) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        _edit_json(path / "manifest.json", lambda m: {**m, key: value})

    return edit


def _drop_manifest_key(key: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        _edit_json(path / "manifest.json", lambda m: {k: v for k, v in m.items() if k != key})

    return edit


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_truncate("csc_slots-"), id="truncated-npy"),
        pytest.param(_truncate("ids-"), id="truncated-ids"),
        pytest.param(_truncate("metas-"), id="truncated-metadata"),
        pytest.param(_truncate("texts-"), id="truncated-texts"),
        pytest.param(_rewrite_array("text_ptr-", lambda a: a[::-1].copy()), id="bad-text-ptr"),
        pytest.param(_rewrite_array("meta_ptr-", lambda a: a + 1), id="bad-metadata-ptr"),
        pytest.param(lambda p: (p / "manifest.json").write_bytes(b"\x00garbage{"), id="garbage"),
        pytest.param(lambda p: (p / "manifest.json").write_text("[1, 2]"), id="manifest-list"),
        pytest.param(lambda p: (p / "manifest.json").write_text(""), id="manifest-empty"),
        pytest.param(_set_manifest("format_version", 4), id="format-version-4"),
        pytest.param(_set_manifest("format_version", "2"), id="format-version-str"),
        pytest.param(_set_manifest("format", "other"), id="wrong-format"),
        pytest.param(_set_manifest("params", {"k1": -1}), id="invalid-params"),
        pytest.param(_set_manifest("files", {}), id="no-files"),
        pytest.param(_set_manifest("log", "log-1-0000000000000000.log"), id="other-log"),
        pytest.param(_drop_manifest_key("generation"), id="no-generation"),
        pytest.param(_drop_manifest_key("segment"), id="no-segment"),
        pytest.param(lambda p: (p / _name(p, "vocab-")).unlink(), id="missing-vocab"),
        pytest.param(lambda p: (p / _name(p, "terms-")).unlink(), id="missing-terms"),
        pytest.param(lambda p: (p / _name(p, "log-")).unlink(), id="missing-log"),
        pytest.param(_drop_a_doc_keeping_checksum, id="inconsistent-docs"),
        pytest.param(_truncate_keeping_checksum, id="truncated-npy-manifest-updated"),
        pytest.param(_rewrite_array("csc_ptr-", lambda a: a[::-1].copy()), id="bad-csc-ptr"),
        pytest.param(_rewrite_array("df-", lambda a: a + 1), id="df-not-csc"),
        pytest.param(_rewrite_array("terms-", lambda a: a.astype(np.int64)), id="wrong-dtype"),
        pytest.param(_rewrite_array("dl-", lambda a: a[:-1]), id="wrong-shape"),
    ],
)
def test_load_rejects_corrupt_index(tmp_path: Path, corrupt: Callable[[Path], None]) -> None:
    path, _, _ = saved(tmp_path)
    corrupt(path)
    with pytest.raises(IndexCorruptError):
        BM25Index.load(path)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_rewrite_array("terms-", lambda a: a + 10**6), id="unknown-terms"),
        pytest.param(_rewrite_array("csc_slots-", lambda a: a + 10**6), id="unknown-slots"),
        pytest.param(_rewrite_array("csc_tfs-", lambda a: a * 0), id="zero-tfs"),
        pytest.param(_rewrite_array("id_hashes-", lambda a: a[::-1].copy()), id="unsorted-ids"),
        pytest.param(_rewrite_array("id_order-", lambda a: a * 0), id="id-order-repeats"),
        pytest.param(
            _rewrite_array("id_ptr-", lambda a: np.r_[a[0], a[2], a[1], a[3:]]), id="id-ptr-back"
        ),
    ],
)
def test_verified_load_checks_every_posting(
    tmp_path: Path, corrupt: Callable[[Path], None]
) -> None:
    path, _, _ = saved(tmp_path)
    assert len(BM25Index.load(path, verify=True)) == 103
    corrupt(path)
    with pytest.raises(IndexCorruptError):
        BM25Index.load(path, verify=True)


def test_verified_load_checks_the_npy_checksums(tmp_path: Path) -> None:
    path, _, _ = saved(tmp_path)
    f = path / _name(path, "csc_tfs-")
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # same size, same header: only the checksum tells
    f.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"checksum mismatch .*csc_tfs-"):
        BM25Index.load(path, verify=True)


def test_load_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    path, _, _ = saved(tmp_path)
    vocab = path / _name(path, "vocab-")
    data = bytearray(vocab.read_bytes())
    data[-3] ^= 1  # a letter of the last term: same size, only the checksum tells
    vocab.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"checksum mismatch .*vocab-"):
        BM25Index.load(path)


def test_mapped_documents_are_checked_on_verified_load(tmp_path: Path) -> None:
    """Texts are mapped, not read, at open: an edit of the same size shows on ``verify=True``."""
    path, _, _ = saved(tmp_path)
    _edit_texts(path)
    assert len(BM25Index.load(path)) == 103  # sizes and offsets still agree
    with pytest.raises(IndexCorruptError, match=r"checksum mismatch .*texts-"):
        BM25Index.load(path, verify=True)


def test_load_missing_directory_or_manifest(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        BM25Index.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        BM25Index.load(tmp_path / "empty")
    path, _, _ = saved(tmp_path)
    (path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError):
        BM25Index.load(path)


def test_save_over_a_save_appends_to_the_log(tmp_path: Path) -> None:
    path, index, _ = saved(tmp_path)
    first = index.generation
    segment = {
        p.name: p.stat().st_mtime_ns for p in path.iterdir() if not p.name.startswith("log-")
    }
    index.add(["extra"], ["t1 t2 extra"])
    index.delete(["doc2"])
    index.save(path)
    gen = index.generation
    assert gen != first
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["generation"] == first  # the segment's; the log carries the rest
    current = BM25Index.read_manifest(path)
    assert (current["generation"], current["documents"], current["log_records"]) == (gen, 103, 1)
    assert sorted(p.name for p in path.iterdir()) == sorted(["manifest.json", *manifest["files"]])
    unchanged = {
        p.name: p.stat().st_mtime_ns for p in path.iterdir() if not p.name.startswith("log-")
    }
    assert unchanged == segment, "an append rewrote a segment file"
    loaded = BM25Index.load(path)
    assert loaded.generation == gen
    assert "extra" in loaded
    assert "doc2" not in loaded
    assert results_of(loaded) == results_of(index)


def test_merge_writes_data_files_before_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _ = saved(tmp_path)
    old_files = set(json.loads((path / "manifest.json").read_text(encoding="utf-8"))["files"])
    written: list[str] = []
    real_write = bm25_module._atomic_write

    def recording_write(target: Path, data: Any, **kwargs: Any) -> str:
        # while writing, the old manifest's files must all still be there
        assert old_files <= {p.name for p in target.parent.iterdir()}
        written.append(target.name)
        return real_write(target, data, **kwargs)

    monkeypatch.setattr(bm25_module, "_atomic_write", recording_write)
    other = sample_index()  # another index object: it did not write the files there
    other.add(["extra"], ["t1"])
    other.save(path)
    assert written[-1] == "manifest.json"
    assert len(written) == 19  # vocab, ids, texts, metadata, 13 arrays, the empty log, manifest
    assert not set(written[:-1]) & old_files  # new names, old files untouched
    assert not old_files & {p.name for p in path.iterdir()}  # and removed after the commit


def test_interrupted_merge_leaves_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, expected = saved(tmp_path)
    real_write = bm25_module._atomic_write

    def crash_at_manifest(target: Path, data: Any, **kwargs: Any) -> str:
        if target.name == "manifest.json":
            msg = "simulated crash"
            raise OSError(msg)
        return real_write(target, data, **kwargs)

    other = sample_index()
    other.add(["extra"], ["t1 t1 t1 t1"])
    monkeypatch.setattr(bm25_module, "_atomic_write", crash_at_manifest)
    with pytest.raises(OSError, match="simulated crash"):
        other.save(path)
    assert results_of(BM25Index.load(path)) == expected  # the old index, intact
    gen = other.generation  # the new data files were written, under new names, before the crash
    new_files = {p.name for p in path.iterdir() if f"-{gen}-" in p.name}
    assert len(new_files) == 18
    monkeypatch.setattr(bm25_module, "_atomic_write", real_write)
    other.save(path)  # the next save succeeds and cleans up
    assert "extra" in BM25Index.load(path)
    assert len(list(path.iterdir())) == 19


def test_interrupted_save_of_another_index_with_the_same_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rebuilt index (one add -> generation 1) saved where an older one-add index lives.
    path = tmp_path / "idx"
    old = BM25Index()
    old.add(["a", "b"], ["old apple", "old pear"])
    old.save(path)
    expected = old.search("apple", 5)
    new = BM25Index()
    new.add(["x", "y", "z"], ["new apple", "new kiwi", "new fig"])
    assert new.generation == old.generation
    real_write = bm25_module._atomic_write

    def crash_after_first_file(target: Path, data: Any, **kwargs: Any) -> str:
        if target.name.startswith("ids-"):
            msg = "simulated crash"
            raise OSError(msg)
        return real_write(target, data, **kwargs)

    monkeypatch.setattr(bm25_module, "_atomic_write", crash_after_first_file)
    with pytest.raises(OSError, match="simulated crash"):
        new.save(path)
    # "a crash leaves either the old index or the new one, never a mix"
    assert BM25Index.load(path).search("apple", 5) == expected


# ------------------------------------------------------------------------------- errors
@pytest.fixture
def small() -> BM25Index:
    index = BM25Index()
    index.add(["a", "b"], ["red apple", "green apple"], [{"c": "red"}, {"c": "green"}])
    index.search("apple", 5)
    return index


@pytest.mark.parametrize(
    ("ids", "texts", "kwargs"),
    [
        pytest.param(["x", "y"], ["one"], {}, id="fewer-texts"),
        pytest.param(["x"], ["one", "two"], {}, id="more-texts"),
        pytest.param(["x"], ["one"], {"metadatas": [None, None]}, id="metadatas-length"),
        pytest.param(["x"], ["one"], {"tokens": []}, id="tokens-length"),
        pytest.param(["x", "x"], ["one", "two"], {}, id="duplicate-ids"),
        pytest.param(["a", "a"], ["one", "two"], {}, id="duplicate-existing-ids"),
        pytest.param([""], ["one"], {}, id="empty-id"),
        pytest.param(["a", ""], ["apple apple", "two"], {}, id="upsert-with-empty-id"),
        pytest.param([1], ["one"], {}, id="int-id"),
        pytest.param([None], ["one"], {}, id="none-id"),
        pytest.param(["x", b"y"], ["one", "two"], {}, id="bytes-id"),
    ],
)
def test_add_rejects_and_leaves_index_unchanged(
    small: BM25Index, ids: list[Any], texts: list[str], kwargs: dict[str, Any]
) -> None:
    before = (len(small), small.generation, small.ids, small.search("apple", 5))
    with pytest.raises(InvalidDocumentsError):
        small.add(ids, texts, **kwargs)
    after = (len(small), small.generation, small.ids, small.search("apple", 5))
    assert after == before
    assert "x" not in small
    assert small.get(["a"])[0] == BM25Hit("a", 0.0, "red apple", {"c": "red"})


def test_check_ids() -> None:
    check_ids(["a", "b", "c"])
    check_ids([])
    for bad in (["a", "a"], [""], [1], ["a", None], [("a",)]):
        with pytest.raises(InvalidDocumentsError):
            check_ids(bad)


def test_invalid_documents_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="duplicate document id 'x'"):
        BM25Index().add(["x", "x"], ["a", "b"])
