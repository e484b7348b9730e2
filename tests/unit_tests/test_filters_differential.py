"""Differential test of the filter language: our validation and evaluator against real Chroma.

A filter is applied by Chroma in the vector leg and by :mod:`langchain_hybrid.filters` in the
BM25 leg, so it must mean one thing in both. Hypothesis generates nested filters (``$and`` /
``$or`` over every comparison operator, operands of every type crossing fields of every type,
and a share of malformed pieces) over a fixed, seeded metadata set that mixes ints (64-bit
extremes included), floats, bools, strings, lists of each and missing keys. For each filter:

* Chroma accepts it and we accept it: our mask selects exactly the ids of Chroma's
  ``collection.get(where=...)``;
* Chroma rejects it: we reject it too, with an :class:`InvalidFilterError` (never a silent
  fallback to one leg);
* we reject what Chroma accepts only in the documented cases (reserved or empty keys, ints
  outside 64 bits, nesting deeper than ``MAX_DEPTH``; see ``filters.py``'s docstring).

The test is also the alarm for a newer chromadb that changes its semantics. Cases are
derandomized (the same on every run); ``FUZZ_RANDOM=1`` explores new ones and ``FUZZ_SCALE``
multiplies the count (``make fuzz`` runs more).
"""

from __future__ import annotations

import math
import os
import random
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from helpers import HashEmbeddings, report
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever
from langchain_hybrid.errors import InvalidFilterError
from langchain_hybrid.filters import (
    MAX_DEPTH,
    MetadataColumns,
    chroma_where,
    parse_filter,
    validate_metadata,
)

SCALE = float(os.environ.get("FUZZ_SCALE", "1.0"))
EXAMPLES = 5_000  # hypothesis-generated filters
BULK = 2_000  # seeded random filters of the same mix (cheap: no hypothesis overhead)

# ------------------------------------------------------------------ the fixed metadata set
INTS = [-3, -2, -1, 0, 1, 2, 3, 10**18, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]
FLOATS = [
    -1.5,
    -0.5,
    -0.0,
    0.0,
    0.1,
    1 / 3,
    0.5,
    1.0,
    1.5,
    2.0,
    2.5,
    -3.0,
    1e20,
    -1e20,
    float(2**53),
    9.2e18,
    5e-324,
]
STRS = ["", "a", "b", "ab", "A", "é", "e\u0301", "1", "1.0", "true", " a", "🦄", "a\x00b"]
BOOLS = [True, False]
POOLS: dict[str, list[Any]] = {"int": INTS, "float": FLOATS, "str": STRS, "bool": BOOLS}
KEYS = ["a", "b", "c", "d", "e"]
N_DOCS = 300


def build_metadata(seed: int = 20261204) -> list[dict[str, Any] | None]:
    """Seeded metadata: each key present with p=0.8, its type drawn per document."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    out: list[dict[str, Any] | None] = []
    for _ in range(N_DOCS):
        meta: dict[str, Any] = {}
        for key in KEYS:
            if rng.random() < 0.2:
                continue
            kind = rng.choice([*POOLS, "list"])
            if kind == "list":
                pool = POOLS[rng.choice(list(POOLS))]
                meta[key] = rng.sample(pool, rng.randint(1, min(3, len(pool))))
            else:
                meta[key] = rng.choice(POOLS[kind])
        out.append(validate_metadata(meta, "doc"))
    return out


# ------------------------------------------------------------------------ filter strategies
# Leaves are valid (operand types crossing field types) 14 times in 15; the rest is broken in
# one of the ways Chroma rejects (or we reject on purpose), so nested trees stay mostly valid.
FIELDS = [*KEYS, "missing"]
NUMBERS = INTS + FLOATS
SCALARS = INTS + FLOATS + STRS + BOOLS
BAD_SCALARS: list[Any] = [None, math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**70]
BAD_SCALARS += [b"a", "\ud800", [1], {"x": 1}]
BAD_KEYS: list[Any] = ["", "#document", "#a", "chroma:document", "$a", "$not", "\ud800", 1]
EQUALITY = ["$eq", "$ne", "$contains", "$not_contains"]
ORDER = ["$gt", "$gte", "$lt", "$lte"]
BROKEN_OPS = ["$regex", "eq", "$and", "$EQ", "$exists"]


def _broken_condition(  # noqa: PLR0911 - one return per kind of flaw
    key: str, flaw: int, pick: random.Random
) -> dict[Any, Any]:
    """A condition with one flaw (``flaw`` in 0..9)."""
    if flaw == 0:
        return {pick.choice(BAD_KEYS): pick.choice(SCALARS)}
    if flaw == 1:
        return {key: pick.choice(BAD_SCALARS)}
    if flaw == 2:
        return {key: {pick.choice(EQUALITY + ORDER): pick.choice(BAD_SCALARS)}}
    if flaw == 3:
        return {key: {pick.choice(ORDER): pick.choice(STRS + BOOLS)}}
    if flaw == 4:
        return {key: {pick.choice(["$in", "$nin"]): pick.sample(SCALARS, pick.randint(2, 3))}}
    if flaw == 5:
        return {key: {"$in": pick.choice([[], "ab", 1, [None], [[1]]])}}
    if flaw == 6:
        return {key: {pick.choice(BROKEN_OPS): 1}}
    if flaw == 7:
        return {key: pick.choice([{}, {"$eq": 1, "$ne": 2}, [1, 2], {"a": 1}])}
    if flaw == 8:
        return {key: 1, "other": 2}
    return {}


def _valid_condition(key: str, shape: int, pick: random.Random) -> dict[Any, Any]:
    """A valid condition (``shape`` in 0..3); operand types cross field types."""
    if shape == 0:
        return {key: pick.choice(SCALARS)}  # the $eq shorthand
    if shape == 1:
        return {key: {pick.choice(EQUALITY): pick.choice(SCALARS)}}
    if shape == 2:
        return {key: {pick.choice(ORDER): pick.choice(NUMBERS)}}
    pool = POOLS[pick.choice(list(POOLS))]
    values = pick.sample(pool, pick.randint(1, min(4, len(pool))))
    operand = tuple(values) if pick.random() < 0.1 else values
    return {key: {pick.choice(["$in", "$nin"]): operand}}


def random_filter(rng: random.Random, depth: int = 3) -> dict[Any, Any]:
    """A random filter with the same mix as the hypothesis strategy below (for bulk runs)."""
    if depth == 0 or rng.random() < 0.45:
        key = rng.choice(FIELDS)
        if rng.random() < 1 / 15:
            return _broken_condition(key, rng.randrange(10), rng)
        return _valid_condition(key, rng.randrange(4), rng)
    op = rng.choice(["$and", "$or"] * 9 + ["$not", "$AND"])
    roll = rng.random()
    if roll < 0.05:
        return {op: [random_filter(rng, depth - 1) for _ in range(rng.randint(0, 1))]}
    children = [random_filter(rng, depth - 1) for _ in range(rng.randint(2, 3))]
    return {op: tuple(children) if roll < 0.1 else children}


@st.composite
def conditions(draw: st.DrawFn) -> dict[Any, Any]:
    """One condition; hypothesis draws the choices, so failures shrink to a small filter."""
    key = draw(st.sampled_from(FIELDS))
    pick = draw(st.randoms(use_true_random=False))
    if draw(st.sampled_from([False] * 14 + [True])):  # broken one time in 15
        return _broken_condition(key, draw(st.integers(0, 9)), pick)
    return _valid_condition(key, draw(st.integers(0, 3)), pick)


filters = st.recursive(
    conditions(),
    lambda children: st.builds(
        lambda op, kids: {op: kids},
        st.sampled_from(["$and", "$or"] * 9 + ["$not", "$AND"]),
        st.one_of(
            *[st.lists(children, min_size=2, max_size=3)] * 9,
            st.lists(children, max_size=1),  # too few children
            st.builds(tuple, st.lists(children, min_size=2, max_size=2)),
        ),
    ),
    max_leaves=6,
).filter(lambda w: w != {})  # {} at the top is "no filter" in both legs


def too_deep(levels: int) -> dict[str, Any]:
    where: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        where = {"$and": [where, {"b": 2}]}
    return where


# ------------------------------------------------------------------------ the comparison
def stricter_than_chroma(where: object, depth: int = 0) -> bool:
    """Whether ``where`` holds a piece we reject on purpose although Chroma accepts it."""
    if depth > MAX_DEPTH:
        return True
    if isinstance(where, Mapping):
        for key, value in where.items():
            if isinstance(key, str) and (key == "" or key.startswith(("#", "chroma:"))):
                return True
            if stricter_than_chroma(value, depth + 1):
                return True
        return False
    if isinstance(where, (list, tuple)):
        return any(stricter_than_chroma(v, depth) for v in where)
    return isinstance(where, int) and not isinstance(where, bool) and not -(2**63) <= where < 2**63


Corpus = tuple[Any, list[str], MetadataColumns]  # collection, ids, our columns


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    metadatas = build_metadata()
    ids = [f"d{i:03d}" for i in range(N_DOCS)]
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    # a unique collection, never deleted (see test_filters.py's new_collection fixture)
    collection = client.create_collection(f"differential-{uuid.uuid4().hex}")
    collection.add(
        ids=ids, embeddings=[[float(i % 7), 1.0] for i in range(N_DOCS)], metadatas=metadatas
    )
    columns = MetadataColumns()
    columns.append(metadatas)
    return collection, ids, columns


def test_metadata_set_mixes_every_type() -> None:
    metadatas = build_metadata()
    seen = Counter(
        type(v).__name__ + ("[]" if not isinstance(v, list) else f"[{type(v[0]).__name__}]")
        for m in metadatas
        for v in (m or {}).values()
    )
    missing = sum(1 for m in metadatas for k in KEYS if k not in (m or {}))
    assert len(seen) == 8, seen  # int, float, bool, str and a list of each
    assert min(seen.values()) > 50, seen
    assert missing > 100, missing


def check_filter(where: Any, corpus: Corpus, outcomes: Counter[str]) -> None:
    """Compare our verdict and our ids with Chroma's for one filter."""
    collection, ids, columns = corpus
    outcomes["cases"] += 1
    try:
        node = parse_filter(where)
    except InvalidFilterError:
        node = None
        ours_rejects = True
    else:
        ours_rejects = False
    try:
        expected = set(collection.get(where=chroma_where(where), include=[])["ids"])
    except Exception:  # noqa: BLE001 - Chroma raises ValueError and its own errors
        chroma_rejects = True
    else:
        chroma_rejects = False
    if chroma_rejects:
        assert ours_rejects, f"Chroma rejects a filter we accept: {where!r}"
        outcomes["both reject"] += 1
        return
    if ours_rejects:
        assert stricter_than_chroma(where), f"we reject what Chroma accepts: {where!r}"
        outcomes["stricter than Chroma"] += 1
        return
    assert node is not None
    mask = columns.evaluate(node)
    got = {doc_id for doc_id, keep in zip(ids, mask, strict=True) if keep}
    assert got == expected, (where, sorted(got ^ expected)[:10])
    outcomes["both accept"] += 1
    outcomes["discriminating"] += 0 < len(expected) < len(ids)


def check_outcomes(outcomes: Counter[str], cases: int) -> None:
    """The run was as long as configured, and its filters mostly valid and discriminating."""
    assert outcomes["cases"] >= cases, outcomes
    assert outcomes["both accept"] >= outcomes["cases"] // 3, outcomes
    assert outcomes["discriminating"] >= outcomes["both accept"] // 2, outcomes
    assert outcomes["both reject"] >= outcomes["cases"] // 20, outcomes


def test_filters_mean_the_same_in_both_legs(corpus: Corpus) -> None:
    """Hypothesis-generated filters (they shrink to a small failing filter)."""
    outcomes: Counter[str] = Counter()
    cases = max(1, int(EXAMPLES * SCALE))

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=not os.environ.get("FUZZ_RANDOM"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(where=filters)
    @example(where={"n": {"$in": [1, 2.5]}})  # issue 13: passed our validation, Chroma rejects
    @example(where={"a": 1.5})  # a float operand against int fields: truncated
    @example(where={"a": {"$contains": 1.0}})  # lists are type-strict
    @example(where={"chroma:document": "x"})  # Chroma matches the document text
    @example(where=too_deep(MAX_DEPTH + 2))
    @example(where=too_deep(MAX_DEPTH - 2))
    def check(where: dict[Any, Any]) -> None:
        check_filter(where, corpus, outcomes)

    check()
    check_outcomes(outcomes, cases)
    report(f"\nfuzz cases run (filters vs Chroma, hypothesis): {dict(outcomes)}")


def test_seeded_random_filters_mean_the_same_in_both_legs(corpus: Corpus) -> None:
    """Many more filters of the same mix, generated cheaply from a seed (printed on failure)."""
    outcomes: Counter[str] = Counter()
    cases = max(1, int(BULK * SCALE))
    seed = random.SystemRandom().randrange(2**32) if os.environ.get("FUZZ_RANDOM") else 13
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    for _ in range(cases):
        where = random_filter(rng)
        while where == {}:  # {} at the top is "no filter" in both legs
            where = random_filter(rng)
        try:
            check_filter(where, corpus, outcomes)
        except AssertionError as e:
            msg = f"seed {seed}: {e}"
            raise AssertionError(msg) from e
    check_outcomes(outcomes, cases)
    report(f"fuzz cases run (filters vs Chroma, seeded): {dict(outcomes)}")


RETRIEVER_FILTERS = 300


def test_both_legs_of_the_retriever_answer_like_chroma() -> None:
    """End to end: each leg of a real HybridRetriever returns only Chroma's matches.

    Every document holds the query words, so an unfiltered BM25 leg returns all of them: with a
    filter it must return exactly the ids Chroma's ``get`` selects, and the vector leg (Chroma's
    filtered HNSW ``query``, approximate: it may return fewer) only ids from that set.
    """
    metadatas = build_metadata(seed=7)[:120]
    docs = [
        Document(id=f"r{i:03d}", page_content=f"router note {i}", metadata=m or {})
        for i, m in enumerate(metadatas)
    ]
    retriever = HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), collection_name=f"legs-{uuid.uuid4().hex[:12]}"
    )
    collection = retriever.store.collection
    rng = random.Random(11)  # noqa: S311 - test data, not secrets
    checked = 0
    while checked < RETRIEVER_FILTERS:
        where = random_filter(rng, depth=2)
        try:
            parse_filter(where)
        except InvalidFilterError:
            continue
        if where == {}:
            continue
        expected = set(collection.get(where=chroma_where(where), include=[])["ids"])
        bm25 = retriever.search_leg("bm25", "router note", k=len(docs), filter=where)
        assert {h.id for h in bm25} == expected, where
        vector = retriever.search_leg("vector", "router note", k=len(docs), filter=where)
        assert {h.id for h in vector} <= expected, where  # HNSW may stop short: a subset
        checked += 1
    report(f"filters checked through both legs of a retriever: {checked}")
