"""CSV files of market rows, from `CSV_SOURCE_PATH` (a file or a folder of `*.csv`).

Two layouts are read, told apart by their header:
- `coingecko`: a `/coins/markets` page flattened by pandas (empty cell = null); keyed on `id`.
- `simple`: `symbol,name,price_usd,market_cap,volume_24h,timestamp`, with an optional `id`.
  Such a file carries no upstream id, so without an `id` column a row's identity is its symbol
  and name together (`btc-bitcoin`): two coins sharing a symbol stay apart.

A file is stored raw in chunks of `CSV_CHUNK_ROWS` rows, each row with its line number, so a bad
row can be reported by line and nothing in the file is lost even when the row is not loaded.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.utils.text import slugify

from crypto.sources import coingecko, files
from crypto.sources.base import FetchContext, Source
from crypto.sources.body import Body, MalformedBody, ParseResult, Record, SourceError, describe_json
from crypto.sources.values import (
    MAX_ID_LENGTH,
    BadValue,
    Converter,
    convert_fields,
    to_datetime,
    to_decimal,
    to_text,
)

SIMPLE_COLUMNS = ("symbol", "name", "price_usd", "market_cap", "volume_24h", "timestamp")
COINGECKO_COLUMNS = ("id", "symbol", "name", "current_price", "market_cap", "total_volume", "last_updated")

SIMPLE_FIELDS: list[tuple[str, str, Converter]] = [
    ("last_updated", "timestamp", to_datetime),
    ("price_usd", "price_usd", to_decimal),
    ("market_cap_usd", "market_cap", to_decimal),
    ("volume_24h_usd", "volume_24h", to_decimal),
]

# The columns we normalize, in either layout: drift on these is a warning, on the rest information.
USED_FIELDS = coingecko.USED_FIELDS | {key for _, key, _ in SIMPLE_FIELDS}


class CsvFileError(SourceError):
    pass


def detect_layout(header: list[str]) -> str:
    columns = set(header)
    if set(COINGECKO_COLUMNS) <= columns:
        return "coingecko"
    if set(SIMPLE_COLUMNS) <= columns:
        return "simple"
    raise CsvFileError(
        f"unrecognised CSV header {header[:8]}: expected the columns "
        f"{','.join(SIMPLE_COLUMNS)} or a flattened CoinGecko /coins/markets page "
        f"({','.join(COINGECKO_COLUMNS)}, ...)"
    )


# A cell is read whole however long, so its row is judged on what it holds and kept whole in
# quarantine, never cut into a placeholder and rows of debris (the csv module's limit is global).
csv.field_size_limit(2**31 - 1)


def _decoded_lines(stream: Any, path: str) -> Iterator[str]:
    """The file's lines as text, one at a time. A UTF-8 byte order mark (Excel writes one) is not
    part of the first column's name; a line that is not UTF-8 stops the read, saying where."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CsvFileError(
                f"{path}: line {number} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}); save the file as UTF-8 and load it again"
            ) from None


def csv_files(path: str) -> list[Path]:
    if not path:
        raise CsvFileError("CSV_SOURCE_PATH is not set: point it at a CSV file or a folder of them")
    target = Path(path)
    if target.is_dir():
        found = sorted(p for p in target.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not found:
            raise CsvFileError(f"{path}: no *.csv files in this folder")
        return found
    if target.is_file():
        return [target]
    raise CsvFileError(f"{path}: no such file or folder")


def read_csv(path: Path, *, chunk_rows: int) -> Iterator[Body]:
    """The file's rows in bodies of `chunk_rows`, read as the file streams: a file of any size
    holds one chunk in memory. The last body carries the digest of the bytes read from disk."""
    with files.saved_stream(str(path)) as saved:
        reader = csv.reader(_decoded_lines(saved.stream, str(path)))
        try:
            header = [column.strip() for column in next(reader)]
        except StopIteration:
            raise CsvFileError(f"{path}: the file is empty; expected a header line") from None
        except csv.Error as exc:
            raise CsvFileError(f"{path}: line 1: {exc}") from None
        layout = detect_layout(header)
        fetched_at = files.modified_at(str(path))
        rows: list[dict[str, Any]] = []
        position = 0

        def body(read: tuple[str, int] = ("", 0)) -> Body:
            return Body(
                data={"layout": layout, "header": header, "rows": rows},
                request=f"file:{path.resolve()}",
                position=position,
                fetched_at=fetched_at,
                record_count=len(rows),
                file_digest=read[0],
                file_size=read[1],
            )

        line = reader.line_num
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                # Kept raw so the bad line is reported by parse(), not lost.
                cells = [f"<unreadable: {exc}>"]
            start, line = line + 1, reader.line_num
            if not cells or all(not cell.strip() for cell in cells):
                continue
            if len(rows) >= chunk_rows:  # a full chunk with a row after it: not the last body
                position += 1
                yield body()
                rows = []
            rows.append({"line": start, "values": cells})
        read = saved.read()
        if rows:
            position += 1
            yield body(read)


def rows_of(data: Any) -> list[Any]:
    if not (isinstance(data, dict) and isinstance(data.get("rows"), list) and isinstance(data.get("header"), list)):
        raise MalformedBody(f"a stored CSV body should be an object with header and rows, got {describe_json(data)}")
    return data["rows"]


def parse(*, data: Any) -> ParseResult:
    result = ParseResult()
    rows = rows_of(data)
    header: list[str] = data["header"]
    layout = data.get("layout") or detect_layout(header)
    for index, row in enumerate(rows):
        where = f"line {row.get('line', '?')}"
        result.index = index
        cells = row.get("values")
        if not isinstance(cells, list) or len(cells) != len(header):
            count = len(cells) if isinstance(cells, list) else 0
            result.reject(where, f"has {count} cells, the header has {len(header)}")
            continue
        # A cell of blanks is an empty cell, as a spreadsheet shows it (a JSON body's "  " is not).
        values = {name: cell if cell.strip() else "" for name, cell in zip(header, cells, strict=True)}
        if layout == "coingecko":
            coingecko.parse_market(values, where=where, result=result)
        else:
            parse_simple(values, where=where, result=result)
    return result


def derived_id(symbol: str, name: str) -> str:
    """The id of a row without one: `usdt-tether`. A name with a letter that has no Latin form
    keeps its letters (`eth-以太坊-20`, `eth-イーサリアム-20`: two coins, not both `eth-20`);
    accented Latin letters are folded as ever (`ada-cardano`), so those ids stay the same."""
    if any(ch.isalpha() and not _has_latin_form(ch) for ch in name):
        return slugify(f"{symbol}-{name}", allow_unicode=True)
    return slugify(f"{symbol}-{name}")


def _has_latin_form(ch: str) -> bool:
    return ch.isascii() or bool(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore"))


def parse_simple(values: dict[str, str], *, where: str, result: ParseResult) -> None:
    symbol, name_ = to_text(values.get("symbol")), to_text(values.get("name"))
    upstream_id = to_text(values.get("id")) or derived_id(symbol, name_)
    if not symbol or not upstream_id:
        result.reject(where, "no symbol (and no id) to key the row on")
        return
    if len(upstream_id) > MAX_ID_LENGTH:
        result.reject(where, f"{symbol}: id longer than {MAX_ID_LENGTH} characters")
        return
    try:
        converted = convert_fields(values, SIMPLE_FIELDS)
    except BadValue as exc:
        result.reject(where, f"{symbol}: {exc}")
        return
    if converted["price_usd"] is None:
        result.reject(where, f"{symbol}: no price_usd")
        return
    result.records.append(
        Record(
            upstream_id=upstream_id,
            symbol=symbol,
            name=name_,
            **converted,
        )
    )


class CsvFiles(Source):
    """CSV files on disk: no upstream to call, so no rate budget and no links; a file of any size
    is streamed chunk by chunk, so a backfill does not read it ahead."""

    name = "csv"
    label = "CSV file"
    interval_setting = "INGEST_INTERVAL_CSV"
    file_suffixes = (".csv", ".csv.gz")
    read_ahead = False
    records_path = "$.rows"
    used_fields = USED_FIELDS

    def fetch_context(self, *, settings: Any, client: Any) -> FetchContext:
        return FetchContext(client=client, path=settings.CSV_SOURCE_PATH, chunk_rows=settings.CSV_CHUNK_ROWS)

    def unconfigured_reason(self, *, settings: Any) -> str | None:
        return None if settings.CSV_SOURCE_PATH else "CSV_SOURCE_PATH is not set"

    def fetch(self, *, context: FetchContext) -> Iterator[Body]:
        for path in csv_files(context.path):
            yield from read_csv(path, chunk_rows=context.chunk_rows)

    def read_file(self, *, path: str, context: FetchContext) -> Iterator[Body]:
        return read_csv(Path(path), chunk_rows=context.chunk_rows)

    def records(self, data: Any) -> list[Any]:
        return rows_of(data)

    def parse(self, *, data: Any) -> ParseResult:
        return parse(data=data)

    def records_view(self, *, items: list[Any], header: Any = None) -> list[Any]:
        """Rows as `{"line": n, column: value, ...}`, the way the file had them."""
        columns = header if isinstance(header, list) else []
        return [{"line": row.get("line"), **dict(zip(columns, row.get("values", []), strict=False))} for row in items]


source = CsvFiles()
