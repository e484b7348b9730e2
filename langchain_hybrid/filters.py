"""Chroma ``where`` filters: validation, and evaluation over columnar metadata for the BM25 leg.

The same filter is pushed to Chroma for the vector leg and evaluated here, *before* top-k
selection, for the BM25 leg, so a filtered query returns only matching documents from either leg.

Grammar (Chroma's)::

    filter   := {key: scalar} | {key: {op: operand}} | {"$and": [filter, filter, ...]}
              | {"$or": [filter, filter, ...]}
    op       := $eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains
    scalar   := str | int | float | bool

Semantics, checked against Chroma 1.5 by ``tests/unit_tests/test_filters.py``:

* a filter dict has exactly one key; ``$and``/``$or`` take a list of at least two filters;
* numbers compare by value (``1 == 1.0``); booleans are not numbers (``True != 1``);
* ``$gt $gte $lt $lte`` take an int or float operand and match numeric values only;
* ``$in``/``$nin`` take a non-empty list of one scalar type;
* ``$ne`` and ``$nin`` also match documents that lack the key;
* ``$contains``/``$not_contains`` test membership in a list-valued metadata field.

Chroma 1.5 compares an int field with a float operand after truncating the operand
(``{"n": 1.5}`` matches ``n=1``); this module compares exactly.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from langchain_hybrid.errors import InvalidFilterError

Scalar: TypeAlias = str | int | float | bool
BoolArray: TypeAlias = npt.NDArray[np.bool_]

COMPARISON_OPS = frozenset(
    {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$not_contains"}
)
LOGICAL_OPS = frozenset({"$and", "$or"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison of a metadata key with an operand."""

    key: str
    op: str
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Logical:
    """A conjunction or disjunction of sub-filters."""

    op: Literal["$and", "$or"]
    children: tuple[Condition | Logical, ...]


Node: TypeAlias = Condition | Logical


_INT64 = 2**63


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -_INT64 <= value < _INT64  # Chroma stores 64-bit integers
    if isinstance(value, str):
        return is_utf8(value)
    return isinstance(value, bool)


def _scalar_kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    return "str"


def _bad(msg: str) -> InvalidFilterError:
    return InvalidFilterError(msg)


def parse_filter(where: object) -> Node | None:
    """Validate a Chroma ``where`` filter and compile it to a tree.

    Args:
        where: the filter, or ``None`` (or an empty dict) for no filter.

    Returns:
        The compiled filter, or ``None`` when there is nothing to filter.

    Raises:
        InvalidFilterError: the filter is malformed or uses an unknown operator.
    """
    if where is None:
        return None
    if isinstance(where, Mapping) and not where:
        return None
    return _parse(where, "filter")


MAX_DEPTH = 32


def chroma_where(where: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a valid filter in the exact shapes Chroma accepts (lists, not tuples)."""

    def plain(value: object) -> object:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(where)  # type: ignore[return-value]


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse(where: object, path: str) -> Node:
    if path.count(".") > MAX_DEPTH:
        msg = f"filter nested deeper than {MAX_DEPTH} levels"
        raise _bad(msg)
    if not isinstance(where, Mapping):
        msg = f"{path} must be a dict, got {type(where).__name__}"
        raise _bad(msg)
    if len(where) != 1:
        msg = (
            f"{path} must have exactly one key (combine conditions with $and/$or), "
            f"got {sorted(map(str, where))}"
        )
        raise _bad(msg)
    ((key, value),) = where.items()
    if not isinstance(key, str) or not key:
        msg = f"{path} has an empty or non-string key: {key!r}"
        raise _bad(msg)
    if key.startswith("$"):
        if key not in LOGICAL_OPS:
            msg = f"unknown logical operator {key!r} in {path}; use $and or $or"
            raise _bad(msg)
        if not isinstance(value, (list, tuple)) or len(value) < 2:  # noqa: PLR2004
            msg = f"{key} in {path} needs a list of at least two filters, got {value!r}"
            raise _bad(msg)
        op: Literal["$and", "$or"] = "$and" if key == "$and" else "$or"
        children = tuple(_parse(child, f"{path}.{key}[{i}]") for i, child in enumerate(value))
        return Logical(op, children)
    if isinstance(value, Mapping):
        if len(value) != 1:
            msg = f"condition on {key!r} must have exactly one operator, got {dict(value)!r}"
            raise _bad(msg)
        ((op_name, operand),) = value.items()
        return _condition(key, op_name, operand)
    return _condition(key, "$eq", value)


def _condition(key: str, op: object, operand: object) -> Condition:
    if op not in COMPARISON_OPS:
        msg = f"unknown operator {op!r} on {key!r}; expected one of {sorted(COMPARISON_OPS)}"
        raise _bad(msg)
    if op in {"$in", "$nin"}:
        if not isinstance(operand, (list, tuple)) or not operand:
            msg = f"{op} on {key!r} needs a non-empty list, got {operand!r}"
            raise _bad(msg)
        if not all(_is_scalar(v) for v in operand):
            msg = f"{op} on {key!r} accepts str, int, finite float or bool values: {operand!r}"
            raise _bad(msg)
        if len({_scalar_kind(v) for v in operand}) != 1:
            msg = f"{op} on {key!r} needs values of one type, got {operand!r}"
            raise _bad(msg)
        return Condition(key, str(op), tuple(operand))
    if not _is_scalar(operand):
        msg = f"{op} on {key!r} needs a str, int, finite float or bool, got {operand!r}"
        raise _bad(msg)
    value: Scalar = operand  # type: ignore[assignment]
    if op in {"$gt", "$gte", "$lt", "$lte"} and _scalar_kind(value) != "num":
        msg = f"{op} on {key!r} needs an int or float operand, got {operand!r}"
        raise _bad(msg)
    return Condition(key, str(op), value)


class MetadataColumns:
    """Metadata of every slot of an index, stored by key and type for vectorised filtering.

    Each key has up to three typed columns (numbers as float64 with NaN for absent, booleans as
    int8 with -1 for absent, strings as int32 codes with -1 for absent) plus a sparse map for
    list values. Slots are appended and never reused; deleted slots are masked by the caller.
    """

    __slots__ = ("_capacity", "_columns", "_size")

    def __init__(self) -> None:
        """Create an empty store."""
        self._columns: dict[str, _Column] = {}
        self._size = 0
        self._capacity = 0

    def __len__(self) -> int:
        """Number of slots stored."""
        return self._size

    def append(self, metadatas: Sequence[Mapping[str, Any] | None]) -> None:
        """Append one slot per metadata dict (``None`` for no metadata)."""
        start = self._size
        self._grow(start + len(metadatas))
        for offset, metadata in enumerate(metadatas):
            if not metadata:
                continue
            slot = start + offset
            for key, value in metadata.items():
                column = self._columns.get(key)
                if column is None:
                    column = self._columns[key] = _Column(self._capacity)
                column.set(slot, value)
        self._size = start + len(metadatas)

    def _grow(self, needed: int) -> None:
        if needed <= self._capacity:
            return
        capacity = max(needed, 2 * self._capacity, 1024)
        for column in self._columns.values():
            column.grow(capacity)
        self._capacity = capacity

    def take(self, slots: npt.NDArray[np.int64]) -> MetadataColumns:
        """Return a new store holding only ``slots``, renumbered from zero (for compaction)."""
        out = MetadataColumns()
        out._size = out._capacity = len(slots)
        out._columns = {key: col.take(slots) for key, col in self._columns.items()}
        return out

    def evaluate(self, node: Node) -> BoolArray:
        """Evaluate a compiled filter over all slots; returns a boolean mask of length ``len``."""
        if isinstance(node, Logical):
            masks = [self.evaluate(child) for child in node.children]
            reduce = np.logical_and if node.op == "$and" else np.logical_or
            combined: BoolArray = reduce.reduce(masks)
            return combined
        column = self._columns.get(node.key)
        if column is None:
            positive = np.zeros(self._size, dtype=bool)
        else:
            positive = column.match(node, self._size)
        if node.op in {"$ne", "$nin", "$not_contains"}:
            return ~positive
        return positive


_NEGATED = {"$ne": "$eq", "$nin": "$in", "$not_contains": "$contains"}


class _Column:
    """Typed columns for one metadata key."""

    __slots__ = ("big", "bools", "codes", "lists", "nums", "vocab")

    def __init__(self, capacity: int) -> None:
        self.nums = np.full(capacity, np.nan)
        self.big: dict[int, int] = {}  # ints beyond float64's exact range, compared exactly
        self.bools = np.full(capacity, -1, dtype=np.int8)
        self.codes = np.full(capacity, -1, dtype=np.int32)
        self.vocab: dict[str, int] = {}
        self.lists: dict[int, frozenset[tuple[str, Scalar]]] = {}

    def grow(self, capacity: int) -> None:
        n = len(self.nums)
        self.nums = np.concatenate([self.nums, np.full(capacity - n, np.nan)])
        self.bools = np.concatenate([self.bools, np.full(capacity - n, -1, dtype=np.int8)])
        self.codes = np.concatenate([self.codes, np.full(capacity - n, -1, dtype=np.int32)])

    def take(self, slots: npt.NDArray[np.int64]) -> _Column:
        out = _Column(0)
        out.nums, out.bools, out.codes = self.nums[slots], self.bools[slots], self.codes[slots]
        out.vocab = self.vocab
        position = {int(old): new for new, old in enumerate(slots)}
        out.lists = {position[s]: v for s, v in self.lists.items() if s in position}
        out.big = {position[s]: v for s, v in self.big.items() if s in position}
        return out

    def set(self, slot: int, value: object) -> None:
        if isinstance(value, bool):
            self.bools[slot] = int(value)
        elif isinstance(value, int) and abs(value) > _EXACT_INT:
            self.big[slot] = value
        elif isinstance(value, (int, float)):
            self.nums[slot] = float(value)
        elif isinstance(value, str):
            self.codes[slot] = self.vocab.setdefault(value, len(self.vocab))
        elif isinstance(value, (list, tuple)):
            self.lists[slot] = frozenset((_scalar_kind(v), v) for v in value)

    def match(self, node: Condition, size: int) -> BoolArray:
        op = _NEGATED.get(node.op, node.op)
        if op == "$contains":
            return self._contains(node.value, size)
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        kind = _scalar_kind(values[0])
        if kind == "num" and (self.big or any(_is_big(v) for v in values)):
            return self._match_exact(op, values, size)
        if kind == "num":
            nums = self.nums[:size]
            operands = np.array([float(v) for v in values])
            with np.errstate(invalid="ignore"):
                if op in {"$eq", "$in"}:
                    return np.isin(nums, operands)
                ordered: BoolArray = _ORDER[op](nums, operands[0])
                return ordered
        if kind == "bool":
            return np.isin(self.bools[:size], [int(v) for v in values])
        codes = [self.vocab[v] for v in values if isinstance(v, str) and v in self.vocab]
        return np.isin(self.codes[:size], codes)

    def _contains(self, value: Scalar | tuple[Scalar, ...], size: int) -> BoolArray:
        mask = np.zeros(size, dtype=bool)
        if isinstance(value, tuple):  # pragma: no cover - rejected by the parser
            return mask
        wanted = (_scalar_kind(value), value)
        for slot, items in self.lists.items():
            if slot < size and wanted in items:
                mask[slot] = True
        return mask

    def _match_exact(self, op: str, values: tuple[Scalar, ...], size: int) -> BoolArray:
        """Compare numbers in Python, exactly (ints beyond 2**53 are involved)."""
        mask = np.zeros(size, dtype=bool)
        numbers: list[tuple[int, float | int]] = [
            (int(s), float(self.nums[s])) for s in np.flatnonzero(~np.isnan(self.nums[:size]))
        ]
        numbers += [(s, v) for s, v in self.big.items() if s < size]
        compare = _PY_ORDER.get(op)
        for slot, number in numbers:
            if compare is None:
                mask[slot] = any(number == v for v in values)
            else:
                mask[slot] = compare(number, values[0])
        return mask


_EXACT_INT = 2**53


def _is_big(value: Scalar) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT_INT


_PY_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}

_ORDER = {
    "$gt": np.greater,
    "$gte": np.greater_equal,
    "$lt": np.less,
    "$lte": np.less_equal,
}


def validate_metadata(metadata: object, where: str) -> dict[str, Any] | None:
    """Check one document's metadata against what Chroma stores without loss.

    Chroma silently drops NaN values and rejects nested dicts and empty lists; rejecting them
    here, before any write, keeps both legs equal and the call all-or-nothing.

    Returns:
        A plain dict copy (``None`` for empty metadata).

    Raises:
        InvalidFilterError: never; see :func:`langchain_hybrid.errors.InvalidDocumentsError`.
    """
    from langchain_hybrid.errors import InvalidDocumentsError  # noqa: PLC0415

    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        msg = f"metadata of {where} must be a dict, got {type(metadata).__name__}"
        raise InvalidDocumentsError(msg)
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if (
            not isinstance(key, str)
            or not key
            or key.startswith(("$", "chroma:"))
            or not is_utf8(key)
        ):
            msg = f"metadata key {key!r} of {where} must be a non-empty string not starting with $"
            raise InvalidDocumentsError(msg)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if not value or not all(_is_scalar(v) for v in value):
                msg = (
                    f"metadata {key!r} of {where}: lists must be non-empty and hold str, int, "
                    f"finite float or bool values, got {value!r}"
                )
                raise InvalidDocumentsError(msg)
            if len({_scalar_kind(v) for v in value}) != 1:
                msg = f"metadata {key!r} of {where}: list values must share one type: {value!r}"
                raise InvalidDocumentsError(msg)
            out[key] = list(value)
        elif _is_scalar(value):
            out[key] = value
        else:
            msg = (
                f"metadata {key!r} of {where} must be str, int, finite float, bool, None or a "
                f"list of those, got {value!r}"
            )
            raise InvalidDocumentsError(msg)
    return out or None
