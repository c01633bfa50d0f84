"""The structure of an upstream body, and how it drifted from an earlier one.

A fingerprint maps each field path of a record ("id", "roi.times", "quotes.USD.price", "tags[]") to
the JSON types seen there and how often: `{"max_supply": {"number": 133, "null": 117}, ...}`.
Ints and floats are both "number": CoinGecko mixes them in one field within a page. Map keys such as
CoinPaprika's quote currencies are ordinary path segments, so `?quotes=KRW` shows as `quotes.USD.*`
removed and `quotes.KRW.*` added. The reserved key `RECORDS` holds `{body kind: record count}`:
"array" (a record list), "csv" (a stored CSV chunk), "object" (a lone object, such as an error body,
walked as one record) or the type of a bare scalar (walked at the path "$").
The walk goes column by column, so the per-value work runs in C loops (`zip`, `map`, `Counter`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

Fingerprint = dict[str, dict[str, int]]

RECORDS = "#records"
NULL = "null"

# Counter keys are (key, type) for JSON values and (column, regex group) for CSV cells.
_TYPE_NAMES: dict[Any, str] = {str: "string", int: "number", float: "number", Decimal: "number", bool: "boolean"}
_TYPE_NAMES |= {type(None): NULL, dict: "object", list: "array", "number": "number", "string": "string", None: NULL}
# A CSV cell: blank is null (pandas writes a null as an empty cell), numeric text is a number.
_CSV_CELL = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<string>.+?))?\s*", re.DOTALL
).fullmatch
_group = attrgetter("lastgroup")


def _add(out: Fingerprint, prefix: str, counts: Mapping[tuple[Any, Any], int]) -> None:
    """Fold `{(key, kind): n}` into `out`, the key under `prefix` and the kind by its type name."""
    for (key, kind), n in counts.items():
        slot = out.setdefault(prefix + (key if type(key) is str else str(key)), {})
        name = _TYPE_NAMES.get(kind) or getattr(kind, "__name__", str(kind)).lower()
        slot[name] = slot.get(name, 0) + n


def _walk_objects(objects: list[dict[Any, Any]], prefix: str, out: Fingerprint) -> None:
    """Count the (key, type) pairs of `objects`, all found at `prefix`, then go one level down.

    Objects are grouped by shape (keys and value types, built in C): the Python loop runs per shape, not per value.
    """
    types = map(tuple, map(map, repeat(type), map(dict.values, objects)))
    shapes = Counter(zip(map(tuple, map(dict.keys, objects)), types, strict=True))
    counts: dict[tuple[Any, Any], int] = {}
    for (keys, kinds), n in shapes.items():
        for pair in zip(keys, kinds, strict=True):
            counts[pair] = counts.get(pair, 0) + n
    _add(out, prefix, counts)
    for key in {key for key, kind in counts if kind is dict or kind is list}:
        _walk_values([o.get(key) for o in objects], prefix + (key if type(key) is str else str(key)), out, count=False)


def _walk_values(values: list[Any], path: str, out: Fingerprint, *, count: bool = True) -> None:
    """Count the types of `values`, all found at `path`, then walk the objects and arrays among them."""
    if count:
        _add(out, path, {("", kind): n for kind, n in Counter(map(type, values)).items()})
    _walk_objects([v for v in values if type(v) is dict], path + ".", out)
    if items := list(chain.from_iterable(v for v in values if type(v) is list)):
        _walk_values(items, path + "[]", out)


def _walk_csv(header: list[Any], rows: list[Any], out: Fingerprint) -> None:
    """Count (column, cell kind) over the rows of a stored CSV chunk; a short row lacks its last columns."""
    counts: Counter[tuple[Any, Any]] = Counter()
    for row in rows:
        cells = row.get("values") if type(row) is dict else None
        if type(cells) is not list:
            continue
        try:
            kinds: list[Any] = list(map(_group, map(_CSV_CELL, cells)))
        except TypeError:  # a cell that is not text: take its JSON type
            kinds = list(map(type, cells))
        counts.update(zip(header, kinds, strict=False))
    _add(out, "", counts)


def fingerprint(data: Any) -> Fingerprint:
    """`{field path: {type name: count}}` over every record of `data`, plus `RECORDS: {kind: count}`.

    Types are "string", "number", "boolean", "null", "object" and "array". A record list is walked
    per record, paths relative to the record; the elements of an array are at `path[]`. A stored CSV
    chunk (`{"header": [...], "rows": [{"line": n, "values": [...]}, ...]}`) has the header's columns
    as fields, typed "number", "string" or "null" (a blank cell).
    """
    out: Fingerprint = {}
    if type(data) is list:
        objects = [r for r in data if type(r) is dict]
        _walk_objects(objects, "", out)
        if len(objects) != len(data):
            _walk_values([r for r in data if type(r) is not dict], "$", out)
        out[RECORDS] = {"array": len(data)}
    elif type(data) is dict and type(data.get("header")) is list and type(data.get("rows")) is list:
        _walk_csv(data["header"], data["rows"], out)
        out[RECORDS] = {"csv": len(data["rows"])}
    elif type(data) is dict:
        _walk_objects([data], "", out)
        out[RECORDS] = {"object": 1}
    else:
        _walk_values([data], "$", out)
        out[RECORDS] = {_TYPE_NAMES.get(type(data), type(data).__name__): 1}
    return {path: dict(sorted(types.items())) for path, types in sorted(out.items())}


def fingerprint_digest(fp: Mapping[str, Mapping[str, int]]) -> str:
    """A short hash of the structure only: the body kind, the paths and their non-null types, no counts."""
    shape = sorted([path, sorted(t for t in types if path == RECORDS or t != NULL)] for path, types in fp.items())
    return hashlib.sha256(json.dumps(shape, separators=(",", ":")).encode()).hexdigest()[:16]


def record_count(fp: Mapping[str, Mapping[str, int]]) -> int:
    return sum(fp.get(RECORDS, {}).values())


@dataclass(frozen=True)
class Drift:
    """How a body's structure moved from a reference fingerprint; every list and map is sorted by path."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    type_changed: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    null_rate_jumps: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.type_changed or self.null_rate_jumps)

    def fields(self) -> list[str]:
        """Every path named by the drift, sorted."""
        return sorted({*self.added, *self.removed, *self.type_changed, *self.null_rate_jumps})

    def summary(self) -> str:
        """One line for an operator; a path whose parent is named in the same part is folded into it."""
        if self.empty:
            return "no drift"
        parts = []
        if self.added:
            parts.append("added " + ", ".join(label for _, label in _fold(self.added)))
        if self.removed:
            parts.append("removed " + ", ".join(label for _, label in _fold(self.removed)))
        if self.type_changed:
            changes = (f"{p}: {'|'.join(b)} -> {'|'.join(n)}" for p, (b, n) in self.type_changed.items())
            parts.append("type changed " + ", ".join(changes))
        if self.null_rate_jumps:
            rates = self.null_rate_jumps
            jumps = (f"{label} {rates[p][0]:.0%} -> {rates[p][1]:.0%}" for p, label in _fold(list(rates)))
            parts.append("null rate of " + ", ".join(jumps))
        return "; ".join(parts)


def _ancestors(path: str) -> Iterable[str]:
    return (path[:i] for i, c in enumerate(path) if c == "." or (c == "[" and i))


def _fold(paths: list[str]) -> list[tuple[str, str]]:
    """(path, label) for each path with no ancestor in `paths`; the label counts the paths folded into it."""
    named = set(paths)
    nested = Counter(next(a for a in _ancestors(p) if a in named) for p in paths if not named.isdisjoint(_ancestors(p)))
    tops = [p for p in paths if named.isdisjoint(_ancestors(p))]
    return [(p, f"{p} (+{nested[p]} nested)" if nested[p] else p) for p in tops]


def drift_between(
    before: Mapping[str, Mapping[str, int]], now: Mapping[str, Mapping[str, int]], *, null_rate_threshold: float = 0.3
) -> Drift:
    """What changed from `before` to `now`; a body with no records (an empty page) shows nothing, so no drift.

    Types are compared without null: a path all null on one side shows as a null-rate jump instead. The
    null rate of a path is the share of records where it is null or absent (under a null parent too);
    array elements (`[]` paths) have none.
    """
    total_before, total_now = record_count(before), record_count(now)
    if not total_before or not total_now:
        return Drift()
    paths_before, paths_now = set(before) - {RECORDS}, set(now) - {RECORDS}
    type_changed: dict[str, tuple[list[str], list[str]]] = {}
    jumps: dict[str, tuple[float, float]] = {}
    for path in sorted(paths_before & paths_now):
        types_before = sorted(t for t in before[path] if t != NULL)
        types_now = sorted(t for t in now[path] if t != NULL)
        if types_before and types_now and types_before != types_now:
            type_changed[path] = (types_before, types_now)
        if "[]" not in path:
            rate_before = max(0.0, 1 - sum(n for t, n in before[path].items() if t != NULL) / total_before)
            rate_now = max(0.0, 1 - sum(n for t, n in now[path].items() if t != NULL) / total_now)
            if abs(rate_now - rate_before) >= null_rate_threshold - 1e-9:
                jumps[path] = (rate_before, rate_now)
    return Drift(sorted(paths_now - paths_before), sorted(paths_before - paths_now), type_changed, jumps)
