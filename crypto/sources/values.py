"""Upstream values as the normalized columns hold them: exact decimals, UTC times, and the limits
of each numeric column, so a value no column can hold rejects its record rather than the run."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any


class BadValue(ValueError):
    pass


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number or numeric string as an exact Decimal; None and "" stay None.

    Floats go through their shortest repr, so 0.1 stays 0.1 rather than 0.1000000000000000055.
    """
    kind = type(value)  # exact types first: JSON numbers are nearly every value, on the hot path
    if kind is float:
        if not math.isfinite(value):
            raise BadValue(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    if kind is int:
        return Decimal(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return to_decimal(float(value))
    if isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise BadValue(f"{value!r} is not a number") from None
        if not result.is_finite():
            raise BadValue(f"{value!r} is not a finite number")
        return result
    raise BadValue(f"{value!r} is not a number")


def to_int(value: Any) -> int | None:
    number = to_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise BadValue(f"{value!r} is not a whole number")
    return int(number)


def to_datetime(value: Any) -> datetime | None:
    """ISO 8601 (`2025-02-09T17:44:04.143Z`) or Unix seconds, always returned in UTC."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, str):
            text = value.strip()
            if text.replace(".", "", 1).isdigit():
                return datetime.fromtimestamp(float(text), tz=UTC)
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        # Out of range too: milliseconds where seconds are meant give a year past 9999.
        raise BadValue(f"{value!r} is not an ISO 8601 time or a Unix timestamp in seconds of years 1-9999") from None
    raise BadValue(f"{value!r} is not a time")


def to_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def zero_is_unknown(value: Decimal | None) -> Decimal | None:
    """CoinPaprika writes unknown supply and market cap as 0; store it as unknown."""
    return None if value is not None and value == 0 else value


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Column:
    """What a numeric column of crypto/models/market.py holds: a value it cannot hold is a bad record,
    never a failed run (the database would refuse the whole body) and never a silent change."""

    limit: Decimal  # |value| < limit
    places: int | None = None  # decimal places kept; None: a whole number
    minimum: Decimal | None = None
    exact_nonzero: bool = False  # a non-zero value too small for `places` is refused, not stored as 0

    def fit(self, value: Any) -> Any:
        if not -self.limit < value < self.limit:
            raise BadValue(f"{value} is too large to store (limit {self.limit:.0e})")
        if self.minimum is not None and value < self.minimum:
            raise BadValue(f"{value} is below {self.minimum}")
        if self.places is not None and value and value.adjusted() < -self.places:
            # Below the last place kept: PostgreSQL rounds half away from zero (6e-9 -> 1e-8, 4e-9 -> 0).
            rounded = value.quantize(Decimal(1).scaleb(-self.places), rounding=ROUND_HALF_UP)
            if rounded == 0 and self.exact_nonzero:
                raise BadValue(f"{value} is smaller than the {self.places} decimal places stored (it would be 0)")
            return rounded  # as the column would store it, without an out-of-range error
        return value


_AMOUNT, _PERCENT = Column(Decimal("1e32"), places=8), Column(Decimal("1e16"), places=8)
COLUMNS: dict[str, Column] = {
    "price_usd": Column(Decimal("1e24"), places=24, exact_nonzero=True),  # never a price turned into 0
    "price_change_24h_usd": Column(Decimal("1e24"), places=24),
    "market_cap_usd": _AMOUNT,
    "volume_24h_usd": _AMOUNT,
    "circulating_supply": _AMOUNT,
    "total_supply": _AMOUNT,
    "max_supply": _AMOUNT,
    "price_change_pct_24h": _PERCENT,
    "market_cap_change_pct_24h": _PERCENT,
    "market_cap_rank": Column(Decimal(2**31), minimum=Decimal(0)),
}
MAX_ID_LENGTH = 200


def convert_fields(
    values: Mapping[str, Any], spec: Sequence[tuple[str, str, Converter]], out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply `(attribute, upstream key, converter)` to `values` into `out`; a bad value names its key."""
    out = {} if out is None else out
    get = values.get
    for attribute, key, converter in spec:
        try:
            value = converter(get(key))
            column = COLUMNS.get(attribute)
            if value is not None and column is not None:
                value = column.fit(value)
        except BadValue as exc:
            raise BadValue(f"`{key}` {exc}") from None
        out[attribute] = value
    return out
