"""What crosses from a source into the services: a body as received, the records parsed from it,
the problems found, and the JSON rules every source reads bodies by."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from crypto.sources.values import MAX_ID_LENGTH, to_text


class SourceError(Exception):
    """A run of this source cannot go on; the message says why in words an operator can act on."""


class MalformedBody(SourceError):
    """The upstream answered, but not with the shape this source reads."""


@dataclass(frozen=True)
class Coin:
    """A coin whose history is asked for: its upstream id, and its symbol and name as the live data
    knows them (history answers carry neither; blank when the coin is not known yet)."""

    upstream_id: str
    symbol: str = ""
    name: str = ""


@dataclass(frozen=True)
class Body:
    """One upstream response body (or one CSV chunk), kept raw exactly as parsed from the wire."""

    data: Any
    request: str  # what was asked: URL with its query (never a key), or the file read
    position: int  # page number or chunk index, 1-based
    fetched_at: datetime
    record_count: int
    file_digest: str = ""  # read from a saved file: sha256 of the file's bytes as read (files.read_bytes)
    file_size: int = 0
    history_of: Coin | None = None  # a window of this coin's history (crypto/sources/history.py)

    @classmethod
    def answered(cls, response: Any, *, position: int, record_count: int) -> Body:
        """The body of an upstream's answer (crypto.sources.http.JsonResponse)."""
        return cls(
            data=response.data,
            request=response.url,
            position=position,
            fetched_at=response.fetched_at,
            record_count=record_count,
        )


@dataclass(frozen=True, slots=True)
class Record:
    """One normalized observation: an asset's market data at its upstream `last_updated`.

    Every value is USD. None means upstream had no value; nothing unknown is ever written as 0.
    """

    upstream_id: str
    symbol: str
    name: str
    last_updated: datetime | None = None
    price_usd: Decimal | None = None
    market_cap_usd: Decimal | None = None
    volume_24h_usd: Decimal | None = None
    market_cap_rank: int | None = None
    circulating_supply: Decimal | None = None
    total_supply: Decimal | None = None
    max_supply: Decimal | None = None
    price_change_24h_usd: Decimal | None = None
    price_change_pct_24h: Decimal | None = None
    market_cap_change_pct_24h: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """A record that was not loaded, and why. `where` is `record 12` or `line 40`; `index` is its
    place in the body's list of records (at the source's records_path), so the raw record can be found again."""

    where: str
    message: str
    index: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class ParseResult:
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    index: int | None = None  # the record being parsed, set by the parse loop

    def reject(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message, self.index))


def describe_json(data: Any) -> str:
    """A short, safe description of an unexpected JSON value for an error message."""
    if isinstance(data, dict):
        keys = ", ".join(sorted(map(str, data))[:8])
        return f"a JSON object with keys [{keys}]"
    if isinstance(data, list):
        return f"a JSON list of {len(data)} items"
    return f"a JSON {type(data).__name__}"


def without_nul(data: Any) -> Any:
    """The body with NUL characters removed from its strings: PostgreSQL text and jsonb cannot
    hold them, and one NUL would otherwise fail the whole run."""
    if isinstance(data, str):
        return data.replace("\x00", "")
    if isinstance(data, list):
        return [without_nul(item) for item in data]
    if isinstance(data, dict):
        return {without_nul(key): without_nul(value) for key, value in data.items()}
    return data


def json_loads(raw: bytes | str) -> Any:
    """orjson for speed; the standard parser for what orjson refuses but a body can hold and still
    be stored faithfully: integers wider than 64 bits (token supplies sometimes are); NaN and
    Infinity (or a number too large for a float, 1e400), kept as {"$non_finite": "NaN"} (JSON and
    jsonb have no such numbers, and a record holding one where a value is needed is refused); and
    escaped lone surrogates (\\ud800), which no UTF-8 text can hold, replaced by U+FFFD."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc).lower():
            return json_loads(nesting_capped(raw))
    try:
        return _without_lone_surrogates(json.loads(raw, parse_constant=_non_finite, parse_float=_finite_float))
    except RecursionError:
        return json_loads(nesting_capped(raw))


# Deeper than this, a value is replaced by TOO_DEEP: every parser, serializer and walk of a body
# has a nesting limit of its own (orjson 255 to write), and one record must not lose the body.
MAX_NESTING = 128
TOO_DEEP = {"$too_deep": f"nested deeper than {MAX_NESTING} levels"}
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def holds_too_deep(value: Any) -> bool:
    """Whether a value holds a TOO_DEEP replacement anywhere (walked without recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if item == TOO_DEEP:
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def nesting_capped(raw: bytes | str) -> bytes:
    """The JSON text with every value that opens deeper than MAX_NESTING levels replaced by
    TOO_DEEP (an object, as for NaN: no field reads it as a value, so its record is refused with
    the reason). Only text that no parser would take is scanned, so bodies pay nothing for it."""
    text = raw.encode() if isinstance(raw, str) else raw
    marker = orjson.dumps(TOO_DEEP)
    out, kept, depth, cut_from = [], 0, 0, -1
    for token in _JSON_TOKEN.finditer(text):
        kind = token.group()[:1]
        if kind == b'"':
            continue
        if kind in b"[{":
            depth += 1
            if depth == MAX_NESTING + 1 and cut_from < 0:
                cut_from = token.start()
        else:
            if depth == MAX_NESTING + 1 and cut_from >= 0:
                out += [text[kept:cut_from], marker]
                kept, cut_from = token.end(), -1
            depth -= 1
    if cut_from >= 0:  # never closed: the text is malformed, and the parser will say so
        return text[:cut_from]
    return b"".join([*out, text[kept:]])


def _non_finite(constant: str) -> dict[str, str]:
    # An object, so that no field reads it as a value: not a number, and not text (an id `NaN`).
    return {"$non_finite": constant}


def _finite_float(text: str) -> float | dict[str, str]:
    number = float(text)
    return number if math.isfinite(number) else _non_finite(text)  # 1e400 overflows to infinity


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs: what is left is lone


def _without_lone_surrogates(data: Any) -> Any:
    if isinstance(data, str):
        return _LONE_SURROGATE.sub("\ufffd", data)
    if isinstance(data, list):
        return [_without_lone_surrogates(item) for item in data]
    if isinstance(data, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(value) for key, value in data.items()}
    return data


def canonical_json(data: Any) -> bytes:
    """The body with sorted keys and no spaces: the same content hashes the same however it was
    formatted on the wire or on disk."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_list(data: Any, *, expected: str) -> list[Any]:
    """The body's list of records; anything else (an error object, say) is a malformed body."""
    if not isinstance(data, list):
        raise MalformedBody(f"{expected}, got {describe_json(data)}")
    return data


def json_objects(items: list[Any], result: ParseResult) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`record N`, object) for each item; an item that is not an object is a problem, skipped."""
    for index, item in enumerate(items):
        where = f"record {index}"
        result.index = index
        if isinstance(item, dict):
            yield where, item
        else:
            result.reject(where, f"expected an object, got {describe_json(item)}")


def record_id(item: Mapping[str, Any], *, where: str, result: ParseResult) -> str | None:
    """The upstream id records are keyed on; a record without one is a problem, never keyed on symbol."""
    upstream_id = to_text(item.get("id"))
    if not upstream_id:
        result.reject(where, "no `id`; records are keyed on it, never on symbol")
    elif len(upstream_id) > MAX_ID_LENGTH:
        result.reject(where, f"`id` is longer than {MAX_ID_LENGTH} characters")
        return None
    return upstream_id or None
