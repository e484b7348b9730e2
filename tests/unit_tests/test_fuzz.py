"""Property tests of the public API with hostile input (issue: reliability).

Every call either works or raises a :class:`HybridRetrieverError` subclass: no ``TypeError``,
``OverflowError`` or pydantic ``ValidationError`` escapes from a search or write method, and
``load_config`` raises nothing but :class:`ConfigError`. A rejected write leaves the store exactly
as it was (Chroma count, BM25 ids, both write generations, and the stored text and metadata of a
sample of documents in both legs); an accepted write leaves both legs holding the same documents;
an accepted query on a healthy store is answered by both legs (not ``degraded``).

Examples are derandomized (the same cases on every run, as CI needs); set ``FUZZ_RANDOM=1`` to
explore new ones and ``FUZZ_SCALE`` (default 1.0) to run more or fewer. Inputs that once broke
the contract are pinned as ``@example``s; hypothesis stops at a failing explicit example, so
``FUZZ_NO_EXPLICIT=1`` skips them to see what the generated cases find. Each test checks that it
ran at least its configured number of cases; the module prints the total at teardown.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import HashEmbeddings, report
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from langchain_hybrid import ConfigError, HybridRetriever, HybridRetrieverError
from langchain_hybrid.config import HybridConfig, load_config
from langchain_hybrid.filters import COMPARISON_OPS

SCALE = float(os.environ.get("FUZZ_SCALE", "1.0"))
CASES: Counter[str] = Counter()

BASE = [
    ("net-1", "The NX-220 router shows error E-4471 when its firmware is outdated", "faq", 2024),
    ("net-2", "Reset the router by holding the button for ten seconds", "handbook", 2021),
    ("gar-1", "Water tomatoes deeply twice a week during hot summers", "handbook", 2020),
    ("cof-1", "Espresso needs a fine grind and nine bar of pressure", "blog", 2019),
    ("cof-2", "A french press brews coffee with a coarse grind", "faq", 2024),
    ("py-1", "Use functools.lru_cache to memoize pure python functions", "faq", 2023),
]
POOL = [f"fz-{i}" for i in range(8)]  # ids the write and delete fuzzers share
SAMPLE = [i for i, *_ in BASE] + POOL


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        derandomize=not os.environ.get("FUZZ_RANDOM"),
        phases=[Phase.generate, Phase.shrink]
        if os.environ.get("FUZZ_NO_EXPLICIT")
        else [Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


def run_counted(name: str, examples: int, inner: Callable[[], None]) -> None:
    """Run a hypothesis test and check it ran at least its configured number of cases."""
    before = CASES[name]
    inner()
    ran = CASES[name] - before
    assert ran >= int(examples * SCALE), f"{name}: only {ran} cases ran"


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Iterator[None]:
    yield
    total = sum(CASES.values())
    report(f"\nfuzz cases run: {total} ({dict(CASES)})")


@pytest.fixture(scope="module")
def retriever() -> HybridRetriever:
    docs = [
        Document(id=i, page_content=t, metadata={"source": s, "year": y, "tags": [s, "all"]})
        for i, t, s, y in BASE
    ]
    return HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), collection_name=f"fuzz-{uuid.uuid4().hex[:12]}"
    )


# ---------------------------------------------------------------------- comparing states
def typed(value: object) -> object:
    """A type-strict, comparable form of a stored value (``1``, ``1.0`` and ``True`` differ)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), typed(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(typed(v) for v in value))
    return (type(value).__name__, value)


def snapshot(r: HybridRetriever) -> tuple[object, ...]:
    """Everything a rejected write must leave alone."""
    chroma = {d.id: (d.page_content, typed(d.metadata)) for d in r.get_by_ids(SAMPLE)}
    bm25 = {h.id: (h.text, typed(h.metadata)) for h in r.bm25.get(SAMPLE) if h is not None}
    return (
        r.store.count(),
        len(r.bm25),
        tuple(sorted(r.bm25.ids)),
        r.store.metadata_generation(),
        r.bm25.generation,
        typed(chroma),
        typed(bm25),
    )


def assert_legs_hold_the_same(r: HybridRetriever, ids: list[str]) -> None:
    """Chroma (the system of record) and BM25 store identical text and metadata for ``ids``."""
    assert r.store.count() == len(r.bm25)
    if not ids:  # Chroma's get() rejects an empty id list
        return
    chroma = {d.id: (d.page_content, typed(d.metadata)) for d in r.get_by_ids(ids)}
    bm25 = {h.id: (h.text, typed(h.metadata)) for h in r.bm25.get(ids) if h is not None}
    assert set(chroma) == set(ids)
    assert chroma == bm25


def unexpected(e: BaseException) -> AssertionError:
    return AssertionError(f"untyped {type(e).__module__}.{type(e).__qualname__}: {e!r}"[:2000])


# ---------------------------------------------------------------------- strategies
def _repeat(piece: str, length: int) -> str:
    return ((piece or "x") * (length // max(1, len(piece)) + 1))[:length]


huge_text = st.builds(_repeat, st.text(min_size=1, max_size=6), st.integers(20_000, 100_000))
control_text = st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=12)
surrogate_text = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
mixed_scripts = st.lists(
    st.sampled_from(
        [
            "coffee",
            "кофе",
            "咖啡",
            "قهوة",
            "कॉफ़ी",
            "☕",
            "🦄🏳️‍🌈",
            "e\u0301",
            "ﬁ",
            "İ",
            "ß",
            "\u200d",
        ]
    ),
    min_size=1,
    max_size=8,
).map(" ".join)
edge_strings = st.sampled_from(
    ["", " ", "\t\n\r ", "\x00", "a\x00b", "\u3000", "\u200b", "\ufeff", "\uffff", "router"]
)
any_text = st.one_of(st.text(max_size=30), edge_strings, control_text, mixed_scripts)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**400, -(10**400)]),
    st.floats(),  # includes NaN, +-inf, -0.0, subnormals
    st.text(max_size=6),
    st.binary(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.tuples(st.floats(), st.floats()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.fractions(),
    st.decimals(),
    st.sets(st.integers(0, 3), max_size=2),
)
non_strings = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=10),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.builds(object),
)
good_queries = st.one_of(
    mixed_scripts,
    st.text(min_size=1, max_size=30).filter(str.strip),
    st.sampled_from(["coffee grind", "router error E-4471", "python", "the", "zzz-no-match"]),
)
queries = st.one_of(good_queries, good_queries, good_queries, any_text, huge_text, non_strings)

# filters: a recursive mix of valid and broken pieces
filter_keys = st.one_of(
    st.sampled_from(["source", "year", "tags", "n", "missing"]),
    st.sampled_from(["", "$and", "$or", "$not", "$eq", "$foo", "chroma:document"]),
    st.text(max_size=4),
    st.integers(-2, 2),
    st.none(),
)
filter_ops = st.one_of(
    st.sampled_from(sorted(COMPARISON_OPS)),
    st.sampled_from(["$regex", "$exists", "$and", "eq", "", "$EQ"]),
    st.text(max_size=4),
    st.integers(0, 2),
)
filter_scalars = st.one_of(
    st.sampled_from(["faq", "blog", "handbook", "all"]),
    st.integers(2018, 2026),
    st.text(max_size=4),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.booleans(),
    st.none(),
)
operands = st.one_of(
    filter_scalars,
    st.lists(filter_scalars, max_size=4),
    st.tuples(filter_scalars, filter_scalars),
    st.dictionaries(st.text(max_size=3), filter_scalars, max_size=2),
    st.binary(max_size=3),
    st.sets(st.integers(0, 3), max_size=3),
)
filter_leaves = st.one_of(
    st.builds(lambda k, v: {k: v}, filter_keys, operands),
    st.builds(lambda k, o, v: {k: {o: v}}, filter_keys, filter_ops, operands),
    st.dictionaries(filter_keys, operands, max_size=3),
)
# well-formed leaves, so that deep valid trees are common too
valid_leaves = st.one_of(
    st.builds(lambda v: {"source": v}, st.sampled_from(["faq", "blog", "handbook"])),
    st.builds(
        lambda o, v: {"year": {o: v}},
        st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]),
        st.integers(2018, 2026),
    ),
    st.builds(
        lambda o, v: {"source": {o: v}},
        st.sampled_from(["$in", "$nin"]),
        st.lists(st.sampled_from(["faq", "blog", "x"]), min_size=1, max_size=3),
    ),
    st.builds(
        lambda o, v: {"tags": {o: v}},
        st.sampled_from(["$contains", "$not_contains"]),
        st.sampled_from(["faq", "all", "zzz"]),
    ),
)
filter_trees = st.recursive(
    st.one_of(filter_leaves, valid_leaves, valid_leaves),
    lambda children: st.one_of(
        st.builds(
            lambda op, cs: {op: cs},
            st.sampled_from(["$and", "$or", "$and", "$or", "$not", "$AND"]),
            st.lists(children, max_size=4),
        ),
        st.builds(
            lambda op, cs: {op: tuple(cs)},
            st.sampled_from(["$and", "$or"]),
            st.lists(children, max_size=3),
        ),
        st.lists(children, max_size=2),
    ),
    max_leaves=8,
)
valid_trees = st.recursive(
    valid_leaves,
    lambda children: st.builds(
        lambda op, cs: {op: cs},
        st.sampled_from(["$and", "$or"]),
        st.lists(children, min_size=2, max_size=3),
    ),
    max_leaves=6,
)
filters = st.one_of(st.none(), st.just({}), st.just([]), filter_trees, valid_trees, junk)

VALID_SEARCH_ARGS = {
    "k": st.integers(1, 12),
    "fetch_k": st.integers(1, 60),
    "weights": st.tuples(st.floats(0, 3), st.floats(0.01, 3)),
    "rrf_k": st.one_of(st.floats(0, 100), st.integers(0, 100)),
    "fusion": st.sampled_from(["rrf", "relative_score", "dbsf"]),
    "filter": st.one_of(st.none(), valid_trees),
}
BAD_SEARCH_ARGS = {
    "k": junk,
    "fetch_k": junk,
    "weights": st.one_of(st.lists(junk, max_size=3), st.tuples(junk, junk), junk),
    "rrf_k": junk,
    "fusion": junk,
    "filter": filters,
    "kk": junk,  # an unknown keyword
}


@st.composite
def search_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly valid arguments with zero to two replaced by junk, so each check is reached."""
    out = draw(st.fixed_dictionaries({}, optional=VALID_SEARCH_ARGS))
    for key in draw(st.lists(st.sampled_from(sorted(BAD_SEARCH_ARGS)), max_size=2, unique=True)):
        out[key] = draw(BAD_SEARCH_ARGS[key])
    return out


modes = st.sampled_from(["invoke", "ainvoke", "bm25", "vector"])


def call_search(r: HybridRetriever, mode: str, query: object, kwargs: dict[str, Any]) -> Any:
    if mode == "invoke":
        return r.invoke(query, **kwargs)  # type: ignore[arg-type]
    if mode == "ainvoke":
        return asyncio.run(r.ainvoke(query, **kwargs))  # type: ignore[arg-type]
    return r.search_leg(mode, query, **kwargs)  # type: ignore[arg-type]


def check_search(r: HybridRetriever, mode: str, query: object, kwargs: dict[str, Any]) -> None:
    before = (r.store.count(), r.store.metadata_generation(), len(r.bm25), r.bm25.generation)
    try:
        result = call_search(r, mode, query, kwargs)
    except HybridRetrieverError:
        result = None
    except Exception as e:
        raise unexpected(e) from e
    assert (
        r.store.count(),
        r.store.metadata_generation(),
        len(r.bm25),
        r.bm25.generation,
    ) == before
    if result is None:
        return
    assert isinstance(result, list)
    k = kwargs.get("k", r.k)
    assert len(result) <= k
    if mode in {"invoke", "ainvoke"}:
        assert all(isinstance(d, Document) and d.id for d in result)
        assert len({d.id for d in result}) == len(result)
        # the store is healthy: an accepted call must be answered by both legs
        degraded = {d.metadata.get("degraded") for d in result} - {None}
        assert not degraded, f"accepted call degraded to one leg: {degraded}"


# ---------------------------------------------------------------------- searches
QUERY_EXAMPLES = 1000


def test_queries_and_search_arguments(retriever: HybridRetriever) -> None:
    @fuzz_settings(QUERY_EXAMPLES)
    @given(mode=modes, query=queries, kwargs=search_kwargs())
    @example(mode="invoke", query="router " * 15_000, kwargs={})  # ~100k characters
    @example(mode="ainvoke", query="\x00", kwargs={})
    @example(mode="invoke", query="coffee", kwargs={"fusion": []})
    @example(mode="ainvoke", query="coffee", kwargs={"fusion": {"rrf": 1}})
    @example(mode="invoke", query="coffee", kwargs={"rrf_k": 10**400})
    @example(mode="invoke", query="coffee", kwargs={"weights": (10**400, 1)})
    @example(mode="invoke", query="coffee", kwargs={"k": 2**70})
    @example(mode="invoke", query="coffee", kwargs={"fetch_k": 2**63})
    def run(mode: str, query: object, kwargs: dict[str, Any]) -> None:
        CASES["queries"] += 1
        check_search(retriever, mode, query, kwargs)

    run_counted("queries", QUERY_EXAMPLES, run)


FILTER_EXAMPLES = 1000


def test_filters(retriever: HybridRetriever) -> None:
    @fuzz_settings(FILTER_EXAMPLES)
    @given(mode=modes, where=filters, query=st.sampled_from(["coffee grind", "router", "the"]))
    @example(mode="invoke", where={"source": {"$in": b"ab"}}, query="coffee")
    @example(mode="invoke", where={"year": {"$in": (2019, 2024)}}, query="coffee")
    @example(mode="invoke", where={"year": 2**63}, query="coffee")
    @example(mode="invoke", where={"$and": [{"source": "faq"}, {}]}, query="coffee")
    @example(mode="invoke", where={"$or": []}, query="coffee")
    @example(mode="invoke", where=[{"source": "faq"}], query="coffee")
    # issue 13: filters must mean one thing in both legs (rejected, or answered by both)
    @example(mode="invoke", where={"year": {"$in": [2019, 2024.5]}}, query="coffee")
    @example(mode="invoke", where={"year": 2019.5}, query="coffee")
    @example(mode="ainvoke", where={"tags": {"$contains": 1.0}}, query="coffee")
    @example(mode="invoke", where={"chroma:document": "x"}, query="coffee")
    @example(mode="bm25", where={"year": {"$nin": [2019.0, 2024.5]}}, query="coffee")
    def run(mode: str, where: object, query: str) -> None:
        CASES["filters"] += 1
        check_search(retriever, mode, query, {"filter": where})

    run_counted("filters", FILTER_EXAMPLES, run)


# ---------------------------------------------------------------------- writes
valid_scalars = st.one_of(
    st.text(max_size=8),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
valid_metadata_values = st.one_of(
    valid_scalars,
    st.none(),
    st.lists(st.text(max_size=4), min_size=1, max_size=3),
    st.lists(st.integers(-(2**31), 2**31), min_size=1, max_size=3),
    st.lists(st.booleans(), min_size=1, max_size=2),
    st.builds(_repeat, st.text(min_size=1, max_size=3), st.integers(10_000, 200_000)),
)
bad_metadata_values = st.one_of(
    surrogate_text,
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 2**100, -(10**30)]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),  # nested
    st.just([]),
    st.lists(st.one_of(st.text(max_size=3), st.integers(), st.floats()), min_size=2, max_size=4),
    st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=3),
    st.lists(st.none(), min_size=1, max_size=2),
    st.binary(max_size=4),
    st.tuples(st.integers(), st.integers()),
    st.builds(object),
)
bad_metadata_keys = st.one_of(
    st.sampled_from(["", "$x", "$and", "chroma:document", "a\x00b"]),
    surrogate_text,
    st.integers(-2, 2),
    st.none(),
    st.tuples(st.integers(0, 2)),
    st.booleans(),
)
metadata_keys = st.one_of(
    st.sampled_from(["source", "year", "tags"]), st.text(min_size=1, max_size=6)
)
page_contents = st.one_of(any_text, any_text, any_text, surrogate_text, huge_text)
doc_ids = st.one_of(
    st.sampled_from(POOL),
    st.sampled_from(POOL),
    st.sampled_from(POOL),
    st.text(max_size=8),
    surrogate_text,
    st.builds(_repeat, st.sampled_from(["L", "é", "🦄"]), st.integers(1_000, 100_000)),
    st.integers(-3, 3),
    st.none(),
    st.binary(max_size=3),
)


@st.composite
def metadatas(draw: st.DrawFn) -> dict[Any, Any]:
    """Valid metadata with, one time in three, one bad key or one bad value."""
    out: dict[Any, Any] = draw(st.dictionaries(metadata_keys, valid_metadata_values, max_size=3))
    flaw = draw(st.sampled_from(["none", "none", "key", "value"]))
    if flaw == "key":
        out[draw(bad_metadata_keys)] = draw(valid_metadata_values)
    elif flaw == "value":
        out[draw(metadata_keys)] = draw(bad_metadata_values)
    return out


@st.composite
def documents(draw: st.DrawFn) -> Document:
    return Document(
        id=draw(st.one_of(st.none(), st.sampled_from(POOL))),
        page_content=draw(page_contents),
        metadata=draw(metadatas()),
    )


document_args = st.one_of(
    st.lists(documents(), max_size=4),
    st.lists(documents(), max_size=4),
    st.lists(st.one_of(documents(), junk), min_size=1, max_size=3),
    junk,
    documents(),  # a single Document, not a list
)
id_args = st.one_of(
    st.none(),
    st.lists(doc_ids, max_size=5),
    st.lists(st.sampled_from(POOL), max_size=4, unique=True),
    junk,
)


def check_write(r: HybridRetriever, docs: object, ids: object) -> None:
    before = snapshot(r)
    try:
        out = r.add_documents(docs, ids=ids)  # type: ignore[arg-type]
    except HybridRetrieverError:
        assert snapshot(r) == before, "a rejected write changed the store"
        return
    except Exception as e:
        raise unexpected(e) from e
    assert isinstance(out, list)
    assert len(out) == len(docs)  # type: ignore[arg-type]
    assert_legs_hold_the_same(r, out)


WRITE_EXAMPLES = 400


def test_writes(retriever: HybridRetriever) -> None:
    @fuzz_settings(WRITE_EXAMPLES)
    @given(docs=document_args, ids=id_args)
    @example(docs=[Document(page_content="x", metadata={"n": 2**63 + 1})], ids=["fz-0"])
    @example(docs=[Document(page_content="x", metadata={"n": [2**70]})], ids=["fz-1"])
    @example(docs=[Document(page_content="x\ud800")], ids=["fz-2"])
    @example(docs=[Document(page_content="x")], ids=["\udc00"])
    @example(docs=[Document(page_content="x", metadata={"s": "\ud800"})], ids=["fz-3"])
    @example(docs=[Document(page_content="x")], ids=5)
    @example(docs=5, ids=None)
    @example(docs=None, ids=None)
    def run(docs: object, ids: object) -> None:
        CASES["writes"] += 1
        check_write(retriever, docs, ids)

    run_counted("writes", WRITE_EXAMPLES, run)


delete_args = st.one_of(
    st.lists(st.one_of(st.sampled_from(POOL), doc_ids, junk), max_size=5),
    st.lists(st.sampled_from(POOL), max_size=3),
    st.text(max_size=5),
    junk,
    st.just(None),
    st.lists(st.lists(st.integers(), max_size=1), min_size=1, max_size=2),  # unhashable items
)


def check_delete(r: HybridRetriever, ids: object, *, refill: bool) -> None:
    if refill:  # keep pool ids around so that deletes have something to remove
        r.add_documents(
            [Document(page_content=f"pool {i}", metadata={"source": "pool"}) for i in POOL],
            ids=POOL,
        )
    try:
        found = r.get_by_ids(ids)  # type: ignore[arg-type]
    except HybridRetrieverError:
        found = None
    except Exception as e:
        raise unexpected(e) from e
    assert found is None or all(isinstance(d, Document) for d in found)
    before = snapshot(r)
    try:
        r.delete(ids)  # type: ignore[arg-type]
    except HybridRetrieverError:
        assert snapshot(r) == before, "a rejected delete changed the store"
        return
    except Exception as e:
        raise unexpected(e) from e
    gone = list(dict.fromkeys(i for i in ids if isinstance(i, str)))  # type: ignore[union-attr]
    assert not (gone and r.get_by_ids(gone))
    assert not any(i in r.bm25 for i in gone)
    assert r.store.count() == len(r.bm25)


DELETE_EXAMPLES = 400


def test_deletes_and_reads_by_id(retriever: HybridRetriever) -> None:
    @fuzz_settings(DELETE_EXAMPLES)
    @given(ids=delete_args, refill=st.booleans())
    @example(ids=None, refill=False)
    @example(ids=5, refill=False)
    @example(ids=[["fz-0"]], refill=False)
    def run(ids: object, refill: bool) -> None:  # noqa: FBT001
        CASES["deletes"] += 1
        check_delete(retriever, ids, refill=refill)

    run_counted("deletes", DELETE_EXAMPLES, run)


def check_get_by_ids(r: HybridRetriever, ids: list[str]) -> None:
    """Any list of id strings (empty, repeated, unknown) reads back the stored ones, no error."""
    try:
        found = r.get_by_ids(ids)
    except Exception as e:
        msg = f"get_by_ids({ids!r:.200}) raised {type(e).__name__}: {e}"
        raise AssertionError(msg[:2000]) from e
    stored = {i for i in ids if i in r.bm25}
    assert {d.id for d in found} == stored
    assert all(isinstance(d, Document) for d in found)


READ_EXAMPLES = 300


def test_get_by_ids_reads_any_list_of_ids(retriever: HybridRetriever) -> None:
    ids = st.lists(st.one_of(st.sampled_from(SAMPLE), st.text(min_size=1, max_size=6)), max_size=6)

    @fuzz_settings(READ_EXAMPLES)
    @given(ids=ids)
    @example(ids=[])  # LangChain's contract: no ids, no documents
    @example(ids=["net-1", "net-1"])
    def run(ids: list[str]) -> None:
        CASES["get_by_ids"] += 1
        check_get_by_ids(retriever, ids)

    run_counted("get_by_ids", READ_EXAMPLES, run)


def check_from_texts(embedding: HashEmbeddings, texts: object, metas: object, ids: object) -> None:
    try:
        built = HybridRetriever.from_texts(
            texts,  # type: ignore[arg-type]
            embedding,
            metas,  # type: ignore[arg-type]
            ids=ids,  # type: ignore[arg-type]
            collection_name=f"fz-{uuid.uuid4().hex[:12]}",
        )
    except HybridRetrieverError:
        return
    except Exception as e:
        raise unexpected(e) from e
    assert built.store.count() == len(built.bm25) == len(texts)  # type: ignore[arg-type]


BUILD_EXAMPLES = 50


def test_from_texts_arguments() -> None:
    embedding = HashEmbeddings()

    @fuzz_settings(BUILD_EXAMPLES)
    @given(
        texts=st.one_of(st.lists(any_text, max_size=3), st.lists(junk, max_size=3), junk),
        metas=st.one_of(st.none(), st.lists(metadatas(), max_size=3), junk),
        ids=id_args,
    )
    @example(texts=["a"], metas=5, ids=None)
    @example(texts=[0.5], metas=None, ids=None)
    @example(texts=None, metas=None, ids=None)
    def run(texts: object, metas: object, ids: object) -> None:
        CASES["from_texts"] += 1
        check_from_texts(embedding, texts, metas, ids)

    run_counted("from_texts", BUILD_EXAMPLES, run)


# ---------------------------------------------------------------------- configuration
SECTION_KEYS: dict[str, list[str]] = {
    name: sorted(field.model_fields)  # type: ignore[attr-defined]
    for name, field in (
        (n, HybridConfig.model_fields[n].annotation) for n in HybridConfig.model_fields
    )
}
config_values = st.one_of(
    junk,
    st.sampled_from(["persistent", "ephemeral", "http", "rrf", "dbsf", ".", "..", "/", "a\x00b"]),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 10**30, 2**63, -1, 0, 1, 0.5]),
    st.lists(st.one_of(st.integers(-2, 10**30), st.floats()), max_size=3),
    st.dictionaries(st.text(max_size=4), junk, max_size=2),
)


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for section in draw(st.lists(st.sampled_from([*SECTION_KEYS, "extra", "Store"]), max_size=4)):
        if draw(st.integers(0, 5)) == 0:
            out[section] = draw(junk)
            continue
        keys = SECTION_KEYS.get(section, ["x"])
        body = out.setdefault(section, {})
        if not isinstance(body, dict):
            continue
        for key in draw(st.lists(st.sampled_from([*keys, "typo"]), max_size=4)):
            body[key] = draw(config_values)
    if draw(st.booleans()):
        out[draw(st.one_of(st.text(max_size=3), st.integers(), st.none()))] = draw(junk)
    return out


env_names = st.lists(
    st.one_of(
        st.sampled_from(["STORE", "FUSION", "CACHE", "BM25", "PORT", "K", "RRF_K", "", "X"]),
        st.text(st.characters(codec="ascii", categories=["Lu", "Nd"]), max_size=4),
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: "LANGCHAIN_HYBRID_" + "__".join(parts))
environs = st.dictionaries(
    env_names,
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(["1", "[1, 2]", "!!python/name:os.system", "{a: 1}", ".inf", ""]),
    ),
    max_size=3,
)


@st.composite
def config_sources(draw: st.DrawFn, tmp: Path) -> object:
    kind = draw(st.sampled_from(["dict", "dict", "yaml", "text", "bytes", "junk"]))
    if kind == "dict":
        return draw(config_dicts())
    if kind == "junk":
        return draw(st.one_of(junk, st.builds(object)))
    path = tmp / f"{uuid.uuid4().hex}.yaml"
    if kind == "yaml":
        # the full dumper: junk values become python tags, which loading must refuse
        path.write_text(yaml.dump(draw(config_dicts()), allow_unicode=True), "utf-8")
    elif kind == "text":
        path.write_text(draw(st.text(max_size=200)), "utf-8")
    else:
        path.write_bytes(draw(st.binary(max_size=100)))
    return path


def check_config(r: HybridRetriever, source: object, environ: object, overrides: object) -> None:
    try:
        config = load_config(source, environ=environ, overrides=overrides)  # type: ignore[arg-type]
    except ConfigError:
        return
    except Exception as e:
        raise unexpected(e) from e
    assert isinstance(config, HybridConfig)
    # what load_config accepts must work: build a retriever on a healthy store and query it
    try:
        built = HybridRetriever.from_store(
            r.store,
            r.embedding,
            bm25_params=config.bm25.params(),
            cache=config.cache,
            **config.retriever_fields(),
        )
        docs = built.invoke("coffee grind")
    except Exception as e:
        msg = f"load_config accepted a config that fails later: {type(e).__name__}: {e}"
        raise AssertionError(msg[:2000]) from e
    assert docs
    assert not any("degraded" in d.metadata for d in docs), "an accepted config degrades"


CONFIG_EXAMPLES = 500


def test_load_config(retriever: HybridRetriever, tmp_path: Path) -> None:
    nested = tmp_path / "nested.yaml"
    nested.write_text("[" * 5000, "utf-8")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("store:\n  path: caf\xe9\n".encode("latin-1"))

    @fuzz_settings(CONFIG_EXAMPLES)
    @given(
        source=config_sources(tmp_path),
        environ=environs,
        overrides=st.one_of(st.none(), config_dicts(), junk),
    )
    @example(source={"fusion": {"rrf_k": float("inf")}}, environ={}, overrides=None)
    @example(source={"fusion": {"weights": [10**400, 1]}}, environ={}, overrides=None)
    @example(source={"fusion": {"fetch_k": 10**30}}, environ={}, overrides=None)
    @example(source={"cache": {"ttl_seconds": float("inf")}}, environ={}, overrides=None)
    @example(source=nested, environ={}, overrides=None)
    @example(source=latin1, environ={}, overrides=None)
    @example(source=5, environ={}, overrides=None)
    @example(source={}, environ={}, overrides=5)
    @example(
        source={},
        environ={"LANGCHAIN_HYBRID_STORE__PORT": "1", "LANGCHAIN_HYBRID_STORE__PORT__X": "1"},
        overrides=None,
    )
    def run(source: object, environ: dict[str, str], overrides: object) -> None:
        CASES["config"] += 1
        check_config(retriever, source, environ, overrides)

    run_counted("config", CONFIG_EXAMPLES, run)


# ---------------------------------------------------------------------- on-disk damage
DAMAGE_EXAMPLES = 120
DAMAGE_DOCS = 30


@pytest.fixture(scope="module")
def damage_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """A persisted index whose BM25 files hold a segment and a log with two records."""
    root = tmp_path_factory.mktemp("damage")
    docs = [
        Document(id=f"dm-{i}", page_content=f"{text} {i}", metadata={"source": s, "year": y})
        for i, (_, text, s, y) in enumerate(BASE * (DAMAGE_DOCS // len(BASE)))
    ]
    built = HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), persist_directory=root, collection_name="kb"
    )
    primary = built.bm25_path
    assert primary is not None
    for path in primary.iterdir():  # files this test made: the next save writes a full segment
        if not path.name.startswith("."):
            path.unlink()
    for late in ("router", "coffee", "grind"):  # a segment, then one log record per write
        built.add_documents([Document(id=f"dm-late-{late}", page_content=f"a late {late} note")])
    files = {p.name: p.read_bytes() for p in primary.iterdir() if not p.name.startswith(".")}
    assert any(name.endswith(".log") and data for name, data in files.items()), sorted(files)
    lengths = next(data for name, data in files.items() if name.startswith("dl-"))
    assert len(lengths) > 128 + 8 * DAMAGE_DOCS // 2, "the segment holds the documents"
    return root, files


damage_kinds = st.sampled_from(
    ["truncate", "flip", "empty", "junk", "delete", "append", "json", "swap"]
)


@st.composite
def damages(draw: st.DrawFn, names: list[str]) -> tuple[str, str, int, bytes]:
    return (
        draw(st.sampled_from(names)),
        draw(damage_kinds),
        draw(st.integers(0, 2**31)),
        draw(st.binary(min_size=1, max_size=64)),
    )


def damage(files: dict[str, bytes], name: str, kind: str, seed: int, junk: bytes) -> None:
    """Change ``files[name]`` in one way, in place (``files`` is this case's copy)."""
    data = files[name]
    at = seed % (len(data) + 1)
    if kind == "truncate":
        files[name] = data[:at]
    elif kind == "flip" and data:
        at %= len(data)
        files[name] = data[:at] + bytes([data[at] ^ (1 + seed % 255)]) + data[at + 1 :]
    elif kind == "empty":
        files[name] = b""
    elif kind == "junk":
        files[name] = junk
    elif kind == "delete":
        del files[name]
    elif kind == "append":
        files[name] = data + junk
    elif kind == "json" and name.endswith(".json"):
        files[name] = mutate_json(data, seed)
    elif kind == "swap":  # another file's content under this name (right size or not)
        others = sorted(n for n in files if n != name)
        if others:
            files[name] = files[others[seed % len(others)]]


def mutate_json(data: bytes, seed: int) -> bytes:
    """Replace one value of a JSON document by a value of another type (valid JSON, wrong)."""
    try:
        document = json.loads(data)
    except ValueError:
        return data[: len(data) // 2]
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, (dict, list)):
                walk(value)

    if isinstance(document, (dict, list)):
        walk(document)
    if not slots:
        return b"{}"
    node, key = slots[seed % len(slots)]
    node[key] = [None, -1, 2**64, "x", [], {}, 1.5, True][seed % 8]
    return json.dumps(document).encode()


def test_damaged_bm25_files(damage_source: tuple[Path, dict[str, bytes]]) -> None:
    """Opening over damaged BM25 files repairs from Chroma or raises a typed error.

    Each case damages one file of a segment + log index in one way (truncated, a byte flipped,
    emptied, replaced by junk or by another file, deleted, appended to, a JSON value of the
    wrong type) in its own copy; the index must open holding exactly Chroma's ids and answer
    from both legs, or raise a typed error.
    """
    root, pristine = damage_source
    late = ["dm-late-router", "dm-late-coffee", "dm-late-grind"]
    chroma_ids = sorted([f"dm-{i}" for i in range(DAMAGE_DOCS)] + late)
    outcomes: Counter[str] = Counter()
    reference = HybridRetriever.load(root, collection_name="kb", embedding=HashEmbeddings())
    expected = [
        (d.id, round(d.metadata["bm25_score"] or 0, 6))
        for d in reference.invoke("router note", k=3)
    ]

    @fuzz_settings(DAMAGE_EXAMPLES)
    @given(hurt=damages(sorted(pristine)))
    def run(hurt: tuple[str, str, int, bytes]) -> None:
        CASES["disk damage"] += 1
        files = dict(pristine)
        damage(files, *hurt)
        case = root / "cases" / uuid.uuid4().hex[:12]
        case.mkdir(parents=True)
        for name, data in files.items():
            (case / name).write_bytes(data)
        try:
            opened = HybridRetriever.load(
                root, collection_name="kb", embedding=HashEmbeddings(), bm25_path=case
            )
            hits = opened.invoke("router note", k=3)
        except HybridRetrieverError as e:
            outcomes[type(e).__name__] += 1
            return
        except Exception as e:
            raise unexpected(e) from e
        assert sorted(opened.bm25.ids) == chroma_ids, hurt
        assert not any("degraded" in d.metadata for d in hits), hurt
        repaired = (case / "manifest.json").read_bytes() != pristine["manifest.json"]
        outcomes["repaired" if repaired else "loaded"] += 1
        # .npy contents are hashed only on load(verify=True): a same-shaped swap loads as is
        got = [(d.id, round(d.metadata["bm25_score"] or 0, 6)) for d in hits]
        outcomes["scores differ from the undamaged index"] += got != expected

    run_counted("disk damage", DAMAGE_EXAMPLES, run)
    report(f"disk damage outcomes: {dict(outcomes)}")
