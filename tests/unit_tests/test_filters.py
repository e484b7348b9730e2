"""Tests of the filter grammar, its evaluation over columnar metadata, and metadata validation.

The central test (`test_evaluate_equals_chroma`) generates random metadata and random nested
filters and checks that our mask selects exactly the ids a real in-process Chroma collection
returns for ``collection.get(where=...)``.

Its generated metadata changes with every example but holds small ints only; the
differential test in ``test_filters_differential.py`` crosses every operand type with every
field type (floats against ints included) over a fixed metadata set, thousands of filters per
run. ``test_float_operand_on_int_field_truncates_like_chroma`` pins Chroma's quirk by hand.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from helpers import report
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_hybrid.errors import (
    HybridRetrieverError,
    InvalidDocumentsError,
    InvalidFilterError,
)
from langchain_hybrid.filters import (
    Condition,
    Logical,
    MetadataColumns,
    parse_filter,
    validate_metadata,
)


@pytest.fixture(scope="module")
def chroma_client() -> chromadb.ClientAPI:
    return chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))


@pytest.fixture
def new_collection(chroma_client: chromadb.ClientAPI) -> Any:
    # Collections are never deleted: in Chroma 1.5.9 the first collection created after a
    # delete_collection can return the deleted collection's `$contains` matches (by position).
    return chroma_client.create_collection(f"filters-{uuid.uuid4().hex}")


def chroma_ids(collection: Any, where: dict[str, Any]) -> set[str]:
    return set(collection.get(where=where, include=[])["ids"])


def our_ids(ids: list[str], metadatas: list[dict[str, Any] | None], where: object) -> set[str]:
    columns = MetadataColumns()
    columns.append(metadatas)
    node = parse_filter(where)
    assert node is not None
    mask = columns.evaluate(node)
    assert mask.dtype == np.bool_
    assert mask.shape == (len(ids),)
    return {doc_id for doc_id, keep in zip(ids, mask, strict=True) if keep}


# -------------------------------------------------------------------------- parse_filter
@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"color": "red"}, Condition("color", "$eq", "red")),
        ({"n": 3}, Condition("n", "$eq", 3)),
        ({"flag": True}, Condition("flag", "$eq", value=True)),
        ({"x": 1.5}, Condition("x", "$eq", 1.5)),
        ({"color": {"$eq": "red"}}, Condition("color", "$eq", "red")),
        ({"color": {"$ne": "red"}}, Condition("color", "$ne", "red")),
        ({"n": {"$gt": 1}}, Condition("n", "$gt", 1)),
        ({"n": {"$gte": 1.5}}, Condition("n", "$gte", 1.5)),
        ({"n": {"$lt": -2}}, Condition("n", "$lt", -2)),
        ({"n": {"$lte": 0}}, Condition("n", "$lte", 0)),
        ({"c": {"$in": ["a", "b"]}}, Condition("c", "$in", ("a", "b"))),
        ({"c": {"$nin": [1.0, 2.5]}}, Condition("c", "$nin", (1.0, 2.5))),
        ({"c": {"$in": (True,)}}, Condition("c", "$in", (True,))),
        ({"tags": {"$contains": "x"}}, Condition("tags", "$contains", "x")),
        ({"tags": {"$not_contains": 4}}, Condition("tags", "$not_contains", 4)),
        (
            {"$and": [{"a": 1}, {"b": {"$ne": "x"}}]},
            Logical("$and", (Condition("a", "$eq", 1), Condition("b", "$ne", "x"))),
        ),
        (
            {"$or": [{"a": 1}, {"$and": [{"b": 2}, {"c": 3}]}, {"d": {"$in": [4]}}]},
            Logical(
                "$or",
                (
                    Condition("a", "$eq", 1),
                    Logical("$and", (Condition("b", "$eq", 2), Condition("c", "$eq", 3))),
                    Condition("d", "$in", (4,)),
                ),
            ),
        ),
    ],
)
def test_parse_filter_every_operator(where: dict[str, Any], expected: object) -> None:
    assert parse_filter(where) == expected


def test_parse_filter_nothing_to_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"a": 1, "b": 2}, id="multiple-keys"),
        pytest.param({"$and": [{"a": 1}]}, id="and-one-child"),
        pytest.param({"$or": [{"a": 1}]}, id="or-one-child"),
        pytest.param({"$and": []}, id="and-no-child"),
        pytest.param({"$and": {"a": 1}}, id="and-not-a-list"),
        pytest.param({"$or": "ab"}, id="or-a-string"),
        pytest.param({"$and": [{"a": 1}, "b"]}, id="and-non-dict-child"),
        pytest.param({"$and": [{"a": 1}, {"a": 1, "b": 2}]}, id="bad-nested-child"),
        pytest.param({"$not": [{"a": 1}, {"b": 2}]}, id="unknown-logical"),
        pytest.param({"a": {"$regex": "x"}}, id="unknown-operator"),
        pytest.param({"a": {"eq": 1}}, id="operator-without-dollar"),
        pytest.param({"a": {"b": {"c": 1}}}, id="nested-dict-value"),
        pytest.param({"a": {"$eq": 1, "$ne": 2}}, id="two-operators"),
        pytest.param({"a": {}}, id="no-operator"),
        pytest.param({"a": {"$in": []}}, id="in-empty"),
        pytest.param({"a": {"$nin": []}}, id="nin-empty"),
        pytest.param({"a": {"$in": [1, "x"]}}, id="in-mixed-types"),
        pytest.param({"a": {"$in": [True, 1]}}, id="in-bool-and-int"),
        pytest.param({"a": {"$in": [1, 2.5]}}, id="in-int-and-float"),
        pytest.param({"a": {"$nin": [2.5, 1]}}, id="nin-float-and-int"),
        pytest.param({"#document": "x"}, id="hash-key"),
        pytest.param({"chroma:document": "x"}, id="chroma-key"),
        pytest.param({"$and": [{"a": 1}, {"#x": 1}]}, id="nested-reserved-key"),
        pytest.param({"\ud800": 1}, id="surrogate-key"),
        pytest.param({"a": {"$in": "abc"}}, id="in-a-string"),
        pytest.param({"a": {"$in": 1}}, id="in-a-scalar"),
        pytest.param({"a": {"$in": [None]}}, id="in-none"),
        pytest.param({"a": {"$in": [[1]]}}, id="in-nested-list"),
        pytest.param({"a": {"$gt": "x"}}, id="gt-string"),
        pytest.param({"a": {"$lte": True}}, id="lte-bool"),
        pytest.param({"a": {"$gte": [1]}}, id="gte-list"),
        pytest.param({"a": None}, id="none-value"),
        pytest.param({"a": {"$eq": None}}, id="eq-none"),
        pytest.param({"a": {"$ne": math.nan}}, id="ne-nan"),
        pytest.param({"a": math.inf}, id="inf-value"),
        pytest.param({"a": [1, 2]}, id="list-value"),
        pytest.param({"a": {"$contains": [1]}}, id="contains-list"),
        pytest.param({"": 1}, id="empty-key"),
        pytest.param({1: 1}, id="non-string-key"),
        pytest.param([{"a": 1}], id="a-list"),
        pytest.param("a = 1", id="a-string"),
        pytest.param(3, id="a-number"),
    ],
)
def test_parse_filter_rejects(where: object) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(where)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, HybridRetrieverError)


# ----------------------------------------------------------- evaluate: hand-checked cases
HAND_IDS = ["d0", "d1", "d2", "d3", "d4", "d5"]
HAND_METAS: list[dict[str, Any] | None] = [
    {"color": "red", "n": 1, "flag": True, "tags": ["a", "b"]},
    {"color": "blue", "n": 2, "flag": False, "tags": ["c"]},
    {"color": 3, "n": "x", "flag": 1},
    {"tags": [1, 2]},
    {"n": 1.0},
    None,
]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"color": "red"}, {"d0"}),
        ({"color": {"$ne": "red"}}, {"d1", "d2", "d3", "d4", "d5"}),  # lacking the key matches
        ({"n": 1}, {"d0", "d4"}),  # 1 == 1.0
        ({"n": {"$gt": 1}}, {"d1"}),  # the string "x" is not a number
        ({"n": {"$lte": 2}}, {"d0", "d1", "d4"}),
        ({"flag": True}, {"d0"}),
        ({"flag": 1}, {"d2"}),  # True is not 1
        ({"color": {"$in": ["red", "blue"]}}, {"d0", "d1"}),
        ({"color": {"$nin": ["red", "green"]}}, {"d1", "d2", "d3", "d4", "d5"}),
        ({"tags": {"$contains": "a"}}, {"d0"}),
        ({"tags": {"$contains": 2}}, {"d3"}),
        ({"tags": {"$not_contains": "a"}}, {"d1", "d2", "d3", "d4", "d5"}),
        ({"tags": "a"}, set()),  # equality never matches a list value
        ({"color": {"$contains": "re"}}, set()),  # no substring matching on strings
        ({"missing": {"$ne": 1}}, set(HAND_IDS)),
        ({"$and": [{"n": {"$gte": 1}}, {"flag": True}]}, {"d0"}),
        ({"$or": [{"color": "blue"}, {"tags": {"$contains": 1}}]}, {"d1", "d3"}),
    ],
)
def test_evaluate_hand_checked(
    where: dict[str, Any], expected: set[str], new_collection: Any
) -> None:
    assert our_ids(HAND_IDS, HAND_METAS, where) == expected
    new_collection.add(ids=HAND_IDS, embeddings=[[0.0, 1.0]] * len(HAND_IDS), metadatas=HAND_METAS)
    assert chroma_ids(new_collection, where) == expected


def test_evaluate_after_take_and_append() -> None:
    columns = MetadataColumns()
    columns.append([{"k": "a"}, {"k": "b"}, None, {"k": "a", "t": [1]}])
    taken = columns.take(np.array([1, 3], dtype=np.int64))
    assert len(taken) == 2
    taken.append([{"k": "a"}, {"t": [1, 2]}])
    node = parse_filter({"k": "a"})
    assert node is not None
    assert taken.evaluate(node).tolist() == [False, True, True, False]
    node = parse_filter({"t": {"$contains": 1}})
    assert node is not None
    assert taken.evaluate(node).tolist() == [False, True, False, True]


def test_float_operand_on_int_field_truncates_like_chroma(new_collection: Any) -> None:
    # Chroma 1.5 compares an int field with a float operand truncated towards zero (and
    # saturated to 64 bits); the BM25 leg does the same so both legs agree. If this starts
    # failing, Chroma has changed: update filters.py, its docstring and the README.
    ids = ["zero", "one", "two", "one.0", "one.5", "max"]
    metas: list[dict[str, Any] | None] = [
        {"n": 0},
        {"n": 1},
        {"n": 2},
        {"n": 1.0},
        {"n": 1.5},
        {"n": 2**63 - 1},
    ]
    new_collection.add(ids=ids, embeddings=[[0.0, 1.0]] * len(ids), metadatas=metas)
    for where, expected in [
        ({"n": 1.5}, {"one", "one.5"}),
        ({"n": {"$lt": 1.5}}, {"zero", "one.0"}),
        ({"n": {"$gte": 1.5}}, {"one", "two", "one.5", "max"}),
        ({"n": -0.5}, {"zero"}),
        ({"n": {"$gt": -0.5}}, {"one", "two", "one.0", "one.5", "max"}),
        ({"n": {"$in": [0.5, 2.5]}}, {"zero", "two"}),
        ({"n": {"$ne": 1.5}}, {"zero", "two", "one.0", "max"}),
        ({"n": {"$lt": 1e20}}, {"zero", "one", "two", "one.0", "one.5"}),  # 1e20 -> 2**63 - 1
        ({"n": {"$gte": 1e20}}, {"max"}),
    ]:
        assert chroma_ids(new_collection, where) == expected, where
        assert our_ids(ids, metas, where) == expected, where


def test_numbers_in_lists_are_type_strict_like_chroma(new_collection: Any) -> None:
    ids = ["ints", "floats", "bools"]
    metas: list[dict[str, Any] | None] = [{"t": [1, 2]}, {"t": [1.0, 2.5]}, {"t": [True]}]
    new_collection.add(ids=ids, embeddings=[[0.0, 1.0]] * len(ids), metadatas=metas)
    for where, expected in [
        ({"t": {"$contains": 1}}, {"ints"}),
        ({"t": {"$contains": 1.0}}, {"floats"}),
        ({"t": {"$contains": 2}}, {"ints"}),
        ({"t": {"$contains": True}}, {"bools"}),
        ({"t": {"$not_contains": 1.0}}, {"ints", "bools"}),
    ]:
        assert chroma_ids(new_collection, where) == expected, where
        assert our_ids(ids, metas, where) == expected, where


def test_int_operand_on_float_field_compares_as_float(new_collection: Any) -> None:
    big = 2**53
    ids = ["float", "int"]
    metas: list[dict[str, Any] | None] = [{"n": float(big)}, {"n": big + 1}]
    new_collection.add(ids=ids, embeddings=[[0.0, 1.0]] * 2, metadatas=metas)
    for where, expected in [
        ({"n": big + 1}, {"float", "int"}),  # float(2**53 + 1) == 2**53
        ({"n": {"$gte": big + 1}}, {"float", "int"}),
        ({"n": {"$gt": big}}, {"int"}),
    ]:
        assert chroma_ids(new_collection, where) == expected, where
        assert our_ids(ids, metas, where) == expected, where


def test_rejected_filters_name_the_operand() -> None:
    with pytest.raises(InvalidFilterError, match=r"\[1, 2\.5\]"):
        parse_filter({"n": {"$in": [1, 2.5]}})
    with pytest.raises(InvalidFilterError, match="chroma:document"):
        parse_filter({"chroma:document": "x"})


def test_large_ints_compare_exactly_like_chroma(new_collection: Any) -> None:
    # Nanosecond timestamps and 64-bit ids exceed 2**53, where float64 loses integers.
    big = 2**53
    ids = ["above", "exact", "below"]
    metas: list[dict[str, Any] | None] = [{"n": big + 1}, {"n": big}, {"n": -big - 1}]
    new_collection.add(ids=ids, embeddings=[[0.0, 1.0]] * 3, metadatas=metas)
    for where, expected in [
        ({"n": big}, {"exact"}),
        ({"n": big + 1}, {"above"}),
        ({"n": {"$in": [big]}}, {"exact"}),
        ({"n": {"$gt": big}}, {"above"}),
        ({"n": {"$lt": -big}}, {"below"}),
        ({"n": {"$ne": big}}, {"above", "below"}),
    ]:
        assert chroma_ids(new_collection, where) == expected, where
        assert our_ids(ids, metas, where) == expected, where


# ------------------------------------------------- evaluate == Chroma, generated examples
KEYS = ["color", "size", "flag", "tags", "mixed"]
FILTER_KEYS = [*KEYS, "absent"]
N_DOCS = 30
MAX_EXAMPLES = 200

small_str = st.text(alphabet="ab", max_size=2)
small_int = st.integers(min_value=-3, max_value=3)
scalars = st.one_of(small_str, small_int, st.booleans())
lists = st.one_of(
    st.lists(small_str, min_size=1, max_size=3),
    st.lists(small_int, min_size=1, max_size=3),
    st.lists(st.booleans(), min_size=1, max_size=3),
)
values = st.one_of(scalars, scalars, lists)
# every key optional: some documents lack it, empty ones become None via validate_metadata
metadata = st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, values))
same_type_operands = st.one_of(
    st.lists(small_str, min_size=1, max_size=3),
    st.lists(small_int, min_size=1, max_size=3),
    st.lists(st.booleans(), min_size=1, max_size=2),
)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from(FILTER_KEYS))
    op = draw(
        st.sampled_from(
            [
                None,  # the {key: value} shorthand for $eq
                "$eq",
                "$ne",
                "$gt",
                "$gte",
                "$lt",
                "$lte",
                "$in",
                "$nin",
                "$contains",
                "$not_contains",
            ]
        )
    )
    if op is None:
        return {key: draw(scalars)}
    if op in {"$gt", "$gte", "$lt", "$lte"}:
        operand: Any = draw(small_int)
    elif op in {"$in", "$nin"}:
        operand = draw(same_type_operands)
    else:
        operand = draw(scalars)
    return {key: {op: operand}}


def filters(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return conditions()
    children = st.lists(filters(depth - 1), min_size=2, max_size=3)
    logical = st.builds(lambda op, kids: {op: kids}, st.sampled_from(["$and", "$or"]), children)
    return st.one_of(conditions(), logical)


def test_evaluate_equals_chroma(chroma_client: chromadb.ClientAPI) -> None:
    stats = {"examples": 0, "filters": 0, "nontrivial": 0}
    ids = [f"doc{i:02d}" for i in range(N_DOCS)]
    embeddings = [[float(i), 1.0] for i in range(N_DOCS)]

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True)
    @given(
        metas=st.lists(metadata, min_size=N_DOCS, max_size=N_DOCS),
        wheres=st.lists(filters(3), min_size=1, max_size=6),
    )
    def check(metas: list[dict[str, Any] | None], wheres: list[dict[str, Any]]) -> None:
        clean = [validate_metadata(m, f"doc {i}") for i, m in enumerate(metas)]
        # a fresh collection per example, never deleted (see the new_collection fixture)
        collection = chroma_client.create_collection(f"gen-{uuid.uuid4().hex}")
        collection.add(ids=ids, embeddings=embeddings, metadatas=clean)
        for where in wheres:
            expected = chroma_ids(collection, where)
            assert our_ids(ids, clean, where) == expected, where
            stats["filters"] += 1
            stats["nontrivial"] += 0 < len(expected) < N_DOCS
        stats["examples"] += 1

    check()
    assert stats["examples"] == MAX_EXAMPLES
    # the generated filters must discriminate, or equality with Chroma would prove little
    # (about 45% of generated filters select neither no document nor all of them)
    assert stats["filters"] >= MAX_EXAMPLES
    assert stats["nontrivial"] >= stats["filters"] // 3, stats
    report(f"filters checked against Chroma: {stats}")


# ----------------------------------------------------------------------- validate_metadata
@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"x": math.nan}, id="nan"),
        pytest.param({"x": math.inf}, id="inf"),
        pytest.param({"x": -math.inf}, id="minus-inf"),
        pytest.param({"x": {"y": 1}}, id="nested-dict"),
        pytest.param({"x": []}, id="empty-list"),
        pytest.param({"x": ()}, id="empty-tuple"),
        pytest.param({"x": [1, "a"]}, id="mixed-list"),
        pytest.param({"x": [True, 1]}, id="bool-and-int-list"),
        pytest.param({"x": [1, 2.5]}, id="int-and-float-list"),
        pytest.param({"#x": 1}, id="hash-key"),
        pytest.param({"x": [1.0, math.nan]}, id="nan-in-list"),
        pytest.param({"x": [None]}, id="none-in-list"),
        pytest.param({"x": [[1]]}, id="nested-list"),
        pytest.param({"x": b"bytes"}, id="bytes"),
        pytest.param({"x": object()}, id="object"),
        pytest.param({"$x": 1}, id="dollar-key"),
        pytest.param({"$and": 1}, id="operator-key"),
        pytest.param({"chroma:document": "x"}, id="chroma-key"),
        pytest.param({"": 1}, id="empty-key"),
        pytest.param({1: 1}, id="int-key"),
        pytest.param(["x", 1], id="not-a-dict"),
        pytest.param("x", id="a-string"),
    ],
)
def test_validate_metadata_rejects(metadata: object) -> None:
    with pytest.raises(InvalidDocumentsError) as info:
        validate_metadata(metadata, "doc 'a'")
    assert isinstance(info.value, ValueError)
    assert "doc 'a'" in str(info.value)


def test_validate_metadata_drops_none_and_copies() -> None:
    original = {"a": 1, "b": None, "c": "x", "d": (1, 2), "e": [True], "f": 1.5, "g": ""}
    out = validate_metadata(original, "doc")
    assert out == {"a": 1, "c": "x", "d": [1, 2], "e": [True], "f": 1.5, "g": ""}
    assert out is not original
    assert original["b"] is None  # the input is not modified


def test_validate_metadata_empty_is_none() -> None:
    assert validate_metadata(None, "doc") is None
    assert validate_metadata({}, "doc") is None
    assert validate_metadata({"a": None, "b": None}, "doc") is None
