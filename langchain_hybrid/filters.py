"""Chroma ``where`` filters: validation, and evaluation over columnar metadata for the BM25 leg.

The same filter is pushed to Chroma for the vector leg and evaluated here, *before* top-k
selection, for the BM25 leg, so a filtered query returns only matching documents from either leg.

Grammar (Chroma's)::

    filter   := {key: scalar} | {key: {op: operand}} | {"$and": [filter, filter, ...]}
              | {"$or": [filter, filter, ...]}
    op       := $eq $ne $gt $gte $lt $lte $in $nin $contains $not_contains
    scalar   := str | int | float | bool

Semantics: Chroma's, as measured on Chroma 1.5.9 and checked differentially against a real
Chroma by ``tests/unit_tests/test_filters_differential.py`` (thousands of random filters over
metadata mixing every type; the same test is the alarm if a newer Chroma changes them):

* a filter dict has exactly one key; ``$and``/``$or`` take a list of at least two filters;
* types are ``str``, ``int``, ``float`` and ``bool``; booleans are not numbers (``True != 1``)
  and strings compare by exact code points (no normalisation, no substrings);
* an int operand against a float field compares as a float (``float(operand)``, so
  ``2**53 + 1`` equals the float ``2**53``); a float operand against an int field compares
  with the operand *truncated towards zero* and saturated to 64 bits: ``{"n": 1.5}`` matches
  ``n=1`` and ``n=1.5``, ``{"n": {"$lt": 1.5}}`` does not match ``n=1``, ``{"n": -0.5}``
  matches ``n=0`` (Chroma's quirk, matched here so both legs agree);
* ``$gt $gte $lt $lte`` take an int or float operand and match numeric values only;
* ``$in``/``$nin`` take a non-empty list of values of *one* type: ``[1, 2.5]`` (int and float)
  is rejected, as Chroma rejects it; write ``[1.0, 2.5]``;
* ``$contains``/``$not_contains`` test membership in a list-valued field, type-strictly: ``1``
  is not in ``[1.0]`` and ``1.0`` is not in ``[1]``;
* ``$ne``, ``$nin`` and ``$not_contains`` are the exact complements of ``$eq``, ``$in`` and
  ``$contains``: they also match documents that lack the key or hold another type.

Rejected here although Chroma accepts them (each would match nothing, or something surprising,
in Chroma): empty keys and keys starting with ``#`` or ``chroma:`` (Chroma stores the document
text under ``chroma:document``), ints outside 64 bits (Chroma converts some to floats), and
filters nested deeper than :data:`MAX_DEPTH`. Everything Chroma rejects is rejected here, with
an :class:`~langchain_hybrid.errors.InvalidFilterError` naming the operand.
"""

from __future__ import annotations

__all__ = ["Condition", "Logical", "Node", "parse_filter"]

import math
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
    """The comparison family of a value: ``bool``, ``num`` (int or float) or ``str``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    return "str"


def _exact_type(value: Scalar) -> str:
    """The stored type of a value, as Chroma keeps it: ``bool``, ``int``, ``float`` or ``str``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


RESERVED_KEY_PREFIXES = ("$", "#", "chroma:")
"""Metadata and filter keys may not start with these (Chroma's operators and internal keys)."""


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


def _check_key(key: object, path: str) -> None:
    if not isinstance(key, str) or not key or not is_utf8(key):
        msg = f"{path} has an empty or non-string key: {key!r}"
        raise _bad(msg)
    if key.startswith(RESERVED_KEY_PREFIXES[1:]):
        msg = f"{path} filters on the reserved key {key!r} (keys starting with # or chroma:)"
        raise _bad(msg)


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
    _check_key(key, path)
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
        if len({_exact_type(v) for v in operand}) != 1:
            msg = (
                f"{op} on {key!r} needs values of one type (int and float do not mix: "
                f"write 1.0, not 1, beside 2.5), got {operand!r}"
            )
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

    Each key has up to four typed columns, allocated on first use (ints as int64 with a presence
    mask, floats as float64 with NaN for absent, booleans as int8 with -1 for absent, strings as
    int32 codes with -1 for absent) plus a sparse map for list values. Ints and floats are kept
    apart because Chroma compares them differently (see the module docstring). Slots are
    appended and never reused; deleted slots are masked by the caller.
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
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def truncate_to_int64(value: float) -> int:
    """A float operand as Chroma compares it with an int field: truncated, saturated to 64 bits.

    Chroma (1.5) casts the operand like Rust's ``f as i64``: towards zero, clamped to the int64
    range (``1.5 -> 1``, ``-0.5 -> 0``, ``1e20 -> 2**63 - 1``). Only finite floats reach here.
    """
    if value >= 2.0**63:
        return _I64_MAX
    if value < -(2.0**63):
        return _I64_MIN
    return int(value)


_FILL: dict[str, Any] = {"int": 0, "has_int": False, "float": np.nan, "bool": -1, "code": -1}
_DTYPE: dict[str, Any] = {
    "int": np.int64,
    "has_int": np.bool_,
    "float": np.float64,
    "bool": np.int8,
    "code": np.int32,
}


class _Column:
    """Typed columns for one metadata key, each allocated when a value of its type first comes.

    ``int`` (int64, with ``has_int`` marking presence), ``float`` (NaN for absent), ``bool``
    (int8, -1 for absent) and ``code`` (int32 codes of strings in ``vocab``, -1 for absent); most
    keys hold one type, so most columns cost one array.
    """

    __slots__ = ("arrays", "capacity", "lists", "vocab")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.arrays: dict[str, npt.NDArray[Any]] = {}
        self.vocab: dict[str, int] = {}
        # list values as (exact type, value) pairs: membership is type-strict, like Chroma's
        self.lists: dict[int, frozenset[tuple[str, Scalar]]] = {}

    def _array(self, name: str) -> npt.NDArray[Any]:
        array = self.arrays.get(name)
        if array is None:
            array = self.arrays[name] = np.full(self.capacity, _FILL[name], dtype=_DTYPE[name])
        return array

    def view(self, name: str, size: int) -> npt.NDArray[Any]:
        """The first ``size`` slots of a typed column (all absent if it was never allocated)."""
        array = self.arrays.get(name)
        if array is None:
            return np.full(size, _FILL[name], dtype=_DTYPE[name])
        return array[:size]

    def grow(self, capacity: int) -> None:
        for name, array in self.arrays.items():
            extra = np.full(capacity - len(array), _FILL[name], dtype=_DTYPE[name])
            self.arrays[name] = np.concatenate([array, extra])
        self.capacity = capacity

    def take(self, slots: npt.NDArray[np.int64]) -> _Column:
        out = _Column(len(slots))
        out.arrays = {name: array[slots] for name, array in self.arrays.items()}
        out.vocab = self.vocab
        position = {int(old): new for new, old in enumerate(slots)}
        out.lists = {position[s]: v for s, v in self.lists.items() if s in position}
        return out

    def set(self, slot: int, value: object) -> None:
        if isinstance(value, bool):
            self._array("bool")[slot] = int(value)
        elif isinstance(value, int):
            self._array("int")[slot] = value
            self._array("has_int")[slot] = True
        elif isinstance(value, float):
            self._array("float")[slot] = value
        elif isinstance(value, str):
            self._array("code")[slot] = self.vocab.setdefault(value, len(self.vocab))
        elif isinstance(value, (list, tuple)):
            self.lists[slot] = frozenset((_exact_type(v), v) for v in value)

    def match(self, node: Condition, size: int) -> BoolArray:
        op = _NEGATED.get(node.op, node.op)
        if op == "$contains":
            return self._contains(node.value, size)
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        kind = _exact_type(values[0])
        if kind == "bool":
            return np.isin(self.view("bool", size), [int(v) for v in values])
        if kind == "str":
            codes = [self.vocab[v] for v in values if isinstance(v, str) and v in self.vocab]
            return np.isin(self.view("code", size), codes)
        # numbers: an int operand meets float fields as a float; a float operand meets int
        # fields truncated (Chroma's casts, see the module docstring)
        if kind == "int":
            as_ints = np.array([int(v) for v in values], dtype=np.int64)
        else:
            as_ints = np.array([truncate_to_int64(float(v)) for v in values], dtype=np.int64)
        as_floats = np.array([float(v) for v in values])
        mask: BoolArray | None = None
        ints, floats = self.arrays.get("int"), self.arrays.get("float")
        with np.errstate(invalid="ignore"):  # NaN (absent) compares False
            if ints is not None:
                mask = self.arrays["has_int"][:size] & _number_match(op, ints[:size], as_ints)
            if floats is not None:
                matched = _number_match(op, floats[:size], as_floats)
                mask = matched if mask is None else mask | matched
        return mask if mask is not None else np.zeros(size, dtype=bool)

    def _contains(self, value: Scalar | tuple[Scalar, ...], size: int) -> BoolArray:
        mask = np.zeros(size, dtype=bool)
        if isinstance(value, tuple):  # pragma: no cover - rejected by the parser
            return mask
        wanted = (_exact_type(value), value)
        for slot, items in self.lists.items():
            if slot < size and wanted in items:
                mask[slot] = True
        return mask


def _number_match(op: str, column: npt.NDArray[Any], operands: npt.NDArray[Any]) -> BoolArray:
    if op in {"$eq", "$in"}:
        if len(operands) == 1:
            equal: BoolArray = column == operands[0]
            return equal
        return np.isin(column, operands)
    ordered: BoolArray = _ORDER[op](column, operands[0])
    return ordered


_ORDER: dict[str, Callable[[Any, Any], BoolArray]] = {
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
            or key.startswith(RESERVED_KEY_PREFIXES)
            or not is_utf8(key)
        ):
            msg = (
                f"metadata key {key!r} of {where} must be a non-empty string not starting "
                "with $, # or chroma:"
            )
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
            if len({_exact_type(v) for v in value}) != 1:
                msg = (
                    f"metadata {key!r} of {where}: list values must share one type (int and "
                    f"float do not mix): {value!r}"
                )
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
