from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crypto.sources import csvfile
from crypto.sources.csvfile import CsvFileError
from tests.conftest import CSV_GECKO, FIXTURES, UPSTREAM

SIMPLE = FIXTURES / "csv" / "simple_markets.csv"


def parse_file(path: Path, chunk_rows: int = 5000) -> tuple[list, list]:
    records, problems = [], []
    for body in csvfile.read_csv(Path(path), chunk_rows=chunk_rows):
        result = csvfile.parse(data=body.data)
        records += result.records
        problems += result.problems
    return records, problems


def test_flattened_coingecko_csv_loads_every_row_with_nulls_for_empty_cells() -> None:
    records, problems = parse_file(UPSTREAM / CSV_GECKO)
    assert len(records) == 250 and problems == []
    ethereum = next(r for r in records if r.upstream_id == "ethereum")
    assert ethereum.max_supply is None
    assert ethereum.price_usd == Decimal("3135.35")
    assert ethereum.market_cap_rank == 2


def test_simple_csv_reports_bad_rows_by_line_and_loads_the_good_ones() -> None:
    records, problems = parse_file(SIMPLE)
    assert [r.symbol for r in records] == ["BTC", "ETH", "USDT", "USDT", "ADA"]
    assert [p.where for p in problems] == ["line 4", "line 6", "line 8", "line 9"]
    assert "`price_usd` 'abc' is not a number" in problems[0].message
    assert "has 3 cells, the header has 6" in problems[1].message
    assert "not an ISO 8601 time" in problems[3].message


def test_simple_csv_without_id_keys_on_symbol_and_name_so_shared_symbols_stay_apart() -> None:
    records, _ = parse_file(SIMPLE)
    tethers = [r.upstream_id for r in records if r.symbol == "USDT"]
    assert tethers == ["usdt-tether", "usdt-tether-gold-bridged"]


def test_simple_csv_coins_told_apart_only_by_a_non_latin_name_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text(
        "symbol,name,price_usd,market_cap,volume_24h,timestamp\n"
        "ETH,以太坊 2.0,100,,,2024-11-16T15:55:17Z\n"
        "ETH,イーサリアム 2.0,5,,,2024-11-16T15:55:17Z\n"
        "ETH, ,7,  ,\t,2024-11-16T15:55:17Z\n"
        "ADA,Cardanó,0.5,,,2024-11-16T15:55:17Z\n",
        encoding="utf-8",
    )
    records, problems = parse_file(path)
    assert problems == []
    assert [(r.upstream_id, r.price_usd) for r in records] == [
        ("eth-以太坊-20", Decimal(100)),
        ("eth-イーサリアム-20", Decimal(5)),
        ("eth", Decimal(7)),
        ("ada-cardano", Decimal("0.5")),  # accents folded, as ids were derived before
    ]
    assert records[2].market_cap_usd is None and records[2].volume_24h_usd is None, "blank cells are empty"


def test_simple_csv_empty_cells_are_null_and_unix_timestamps_are_read() -> None:
    records, _ = parse_file(SIMPLE)
    eth = next(r for r in records if r.symbol == "ETH")
    assert eth.volume_24h_usd is None
    tether = next(r for r in records if r.upstream_id == "usdt-tether")
    assert tether.last_updated is not None and tether.last_updated.isoformat() == "2024-11-16T15:55:17+00:00"


def test_rows_are_stored_in_chunks_with_their_line_numbers() -> None:
    bodies = list(csvfile.read_csv(UPSTREAM / CSV_GECKO, chunk_rows=100))
    assert [b.record_count for b in bodies] == [100, 100, 50]
    assert [b.position for b in bodies] == [1, 2, 3]
    assert bodies[1].data["rows"][0]["line"] == 102


def test_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + SIMPLE.read_bytes())
    records, problems = parse_file(path)
    assert len(records) == 5 and len(problems) == 4


def test_undecodable_bytes_give_a_clear_message_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(SIMPLE.read_bytes().replace(b"Cardano", "Cardanó".encode("latin-1")))
    with pytest.raises(CsvFileError, match=r"line 10 is not UTF-8 text \(byte 0xf3.*save the file as UTF-8"):
        parse_file(path)


def test_unknown_header_names_the_expected_layouts(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("ticker,last\nBTC,1\n")
    with pytest.raises(CsvFileError, match="unrecognised CSV header \\['ticker', 'last'\\]"):
        parse_file(path)


def test_empty_file_and_missing_path_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CsvFileError, match="the file is empty"):
        parse_file(empty)
    with pytest.raises(CsvFileError, match="no such file or folder"):
        csvfile.csv_files(str(tmp_path / "missing"))
    with pytest.raises(CsvFileError, match="CSV_SOURCE_PATH is not set"):
        csvfile.csv_files("")


def test_a_folder_is_read_file_by_file_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(SIMPLE.read_bytes())
    (tmp_path / "a.csv").write_bytes((UPSTREAM / CSV_GECKO).read_bytes())
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in csvfile.csv_files(str(tmp_path))] == ["a.csv", "b.csv"]


def test_a_large_compressed_csv_streams_in_bounded_memory_and_its_digest_is_of_the_bytes_on_disk(
    tmp_path: Path,
) -> None:
    import gzip
    import hashlib
    import tracemalloc

    path = tmp_path / "markets.csv.gz"
    row = b"BTC,Bitcoin,90340.5,1781894307530,67993024393,2024-11-16T15:55:07Z\n"
    with gzip.open(path, "wb") as out:
        out.write(b"symbol,name,price_usd,market_cap,volume_24h,timestamp\n")
        for _ in range(40):
            out.write(row * 5000)  # 200,000 rows, 14 MB once inflated
    tracemalloc.start()
    try:
        rows, last = 0, None
        for body in csvfile.read_csv(path, chunk_rows=5000):
            rows, last = rows + body.record_count, body
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == 200_000 and last is not None
    assert peak < 12 << 20, f"{peak / 2**20:.0f} MiB held to read a 14 MB file"
    assert (last.file_digest, last.file_size) == (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)


def test_a_saved_body_that_inflates_past_the_cap_is_refused_as_it_is_read(tmp_path: Path) -> None:
    import tracemalloc
    import zlib

    from crypto.sources.body import SourceError
    from crypto.sources.files import json_bodies

    path = tmp_path / "tickers.json.gz"
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    path.write_bytes(b"".join(packer.compress(b" " * (1 << 20)) for _ in range(300)) + packer.flush())
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"more than 4,194,304 bytes once decompressed"):
            list(json_bodies(str(path), count=len, limit=4 << 20))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB held to refuse a 300 MB body"
