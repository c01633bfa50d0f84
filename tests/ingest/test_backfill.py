"""Backfill from saved bodies (file, folder, glob, gzip) and rebuilding normalized rows from raw."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses
from django.core.management import CommandError, call_command

from crypto.models import Asset, IngestionRun, LoadedFile, MarketQuote, RawBody
from crypto.services.ingest.run import ingestion_run, saved_file
from tests.conftest import GECKO_PAGE, GECKO_SMALL, PAPRIKA, UPSTREAM, mock_gecko_two_pages, mock_paprika, upstream_json

pytestmark = pytest.mark.django_db


def archive(folder: Path, count: int = 4) -> list[Path]:
    """Daily CoinPaprika bodies derived from the recorded one: shifted prices and times, some gzipped."""
    folder.mkdir(exist_ok=True)
    base = upstream_json(PAPRIKA)
    assert isinstance(base, list)
    paths = []
    for day in range(count):
        body = [dict(t, last_updated=f"2023-08-{11 + day:02d}T08:09:18Z") for t in base[:50]]
        path = folder / (f"tickers-{day}.json" + (".gz" if day % 2 else ""))
        data = orjson.dumps(body)
        path.write_bytes(gzip.compress(data) if day % 2 else data)
        os.utime(path, (1_700_000_000 + day * 86_400,) * 2)  # oldest first by modification time
        paths.append(path)
    return paths


def ingest(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ingest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_folder_loads_every_body_oldest_first_gzip_included_with_progress(tmp_path: Path) -> None:
    archive(tmp_path / "saved")
    out, err = ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved"))
    assert "loading 4 files" in out and "4 succeeded (4 bodies stored, 0 already stored)" in out
    assert "files 4/4" in err and "records/s" in err and "ETA" in err
    assert RawBody.objects.count() == 4 and MarketQuote.objects.count() == 200
    fetched = list(RawBody.objects.order_by("id").values_list("fetched_at", flat=True))
    assert fetched == sorted(fetched), "loaded in timestamp order"


def test_a_glob_selects_files(tmp_path: Path) -> None:
    archive(tmp_path / "saved")
    ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved" / "*.gz"))
    assert RawBody.objects.count() == 2


def test_an_interrupted_backfill_resumes_without_loading_anything_twice(tmp_path: Path) -> None:
    paths = archive(tmp_path / "saved")
    partial = tmp_path / "partial"
    partial.mkdir()
    for path in paths[:2]:
        shutil.copy2(path, partial / path.name)
    ingest("--source", "coinpaprika", "--file", str(partial))  # "interrupted" after two files
    out, _ = ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved"))
    assert "2 files already loaded, skipped; 2 succeeded (2 bodies stored, 0 already stored)" in out
    assert RawBody.objects.count() == 4 and MarketQuote.objects.count() == 200
    out, _ = ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved"))
    assert "4 files already loaded, skipped; 0 succeeded" in out


def test_a_file_already_loaded_is_known_by_its_bytes_wherever_it_lies(tmp_path: Path) -> None:
    [path] = archive(tmp_path / "saved", count=1)
    ingest("--source", "coinpaprika", "--file", str(path))
    moved = tmp_path / "elsewhere.json"
    shutil.copy(path, moved)
    out, _ = ingest("--source", "coinpaprika", "--file", str(moved))
    assert "already loaded on" in out and IngestionRun.objects.count() == 1
    loaded = LoadedFile.objects.get()
    assert loaded.path == str(path) and loaded.records == 50 and loaded.run == IngestionRun.objects.get()
    # The same content re-formatted is a different file but the same body: stored once, by content hash.
    moved.write_bytes(orjson.dumps(orjson.loads(path.read_bytes()), option=orjson.OPT_INDENT_2))
    ingest("--source", "coinpaprika", "--file", str(moved))
    assert IngestionRun.objects.order_by("id").last().raw_duplicates == 1
    assert RawBody.objects.count() == 1 and LoadedFile.objects.count() == 2


def test_a_file_changed_while_its_run_loads_it_is_known_by_the_bytes_that_were_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crypto.services.ingest import run as ingestion

    first, second = archive(tmp_path / "saved", count=2)
    loaded_bytes, replacement = first.read_bytes(), second.read_bytes()
    second.unlink()
    real = ingestion.body_records_upsert

    def upsert_while_the_file_is_replaced(**kwargs: Any) -> tuple[int, int]:
        first.write_bytes(replacement)  # another day's body, written over the file mid-run
        return real(**kwargs)

    monkeypatch.setattr(ingestion, "body_records_upsert", upsert_while_the_file_is_replaced)
    ingest("--source", "coinpaprika", "--file", str(first))
    monkeypatch.undo()
    assert LoadedFile.objects.get().digest == hashlib.sha256(loaded_bytes).hexdigest()
    ingest("--source", "coinpaprika", "--file", str(first))
    assert RawBody.objects.count() == 2, "the new content is loaded, not taken for loaded"
    assert LoadedFile.objects.count() == 2


def test_a_file_whose_run_failed_is_not_marked_loaded(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "btc-bitcoin", "quotes": {"USD": {"price": 1}}, "rank": -1}]')
    with pytest.raises(CommandError):
        ingest("--source", "coinpaprika", "--file", str(bad))
    assert not LoadedFile.objects.exists()


def test_a_bad_file_fails_its_own_run_and_the_command_but_not_the_others(tmp_path: Path) -> None:
    archive(tmp_path / "saved", count=2)
    (tmp_path / "saved" / "broken.json").write_text('{"error": "rate limited"}')
    with pytest.raises(CommandError, match="coinpaprika failed .*JSON list of tickers"):
        ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved"))
    assert RawBody.objects.count() == 2


def test_a_target_with_nothing_to_load_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or folder"):
        ingest("--source", "coingecko", "--file", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no saved bodies"):
        ingest("--source", "coingecko", "--file", str(tmp_path / "empty"))


def normalized() -> list[tuple]:
    return sorted(
        MarketQuote.objects.values_list(
            "asset__source",
            "asset__upstream_id",
            "asset__symbol",
            "last_updated",
            "price_usd",
            "market_cap_usd",
            "volume_24h_usd",
            "market_cap_rank",
            "max_supply",
            "raw__content_hash",
        )
    )


def test_renormalize_rebuilds_exactly_what_live_ingestion_produced(http: responses.RequestsMock) -> None:
    mock_gecko_two_pages(http)
    mock_paprika(http)
    for source in ("coingecko", "coinpaprika"):
        assert ingestion_run(source=source, trigger="cli").status == "succeeded"
    ingestion_run(
        source="csv", trigger="file", origin=saved_file(path=str(UPSTREAM / "coingecko_markets_csv_Global-rd.csv"))
    )
    live = normalized()
    MarketQuote.objects.all().delete()
    Asset.objects.all().delete()

    out = StringIO()
    call_command("renormalize", "--batch", "2", stdout=out, stderr=StringIO())
    assert normalized() == live
    assert "Renormalized 4 bodies, 3,100 records" in out.getvalue()
    assert not IngestionRun.objects.filter(status="failed").exists()


def test_renormalize_can_limit_to_a_source_and_a_date(tmp_path: Path) -> None:
    for name in (GECKO_PAGE, GECKO_SMALL):
        ingestion_run(source="coingecko", trigger="file", origin=saved_file(path=str(UPSTREAM / name)))
    MarketQuote.objects.all().delete()
    out = StringIO()
    call_command("renormalize", "--source", "coinpaprika", stdout=out, stderr=StringIO())
    assert "Renormalized 0 bodies" in out.getvalue() and MarketQuote.objects.count() == 0
    call_command("renormalize", "--source", "coingecko", "--since", "2000-01-01", stdout=out, stderr=StringIO())
    assert MarketQuote.objects.count() == 350
    with pytest.raises(CommandError, match="expected an ISO 8601 date"):
        call_command("renormalize", "--since", "last tuesday", stdout=out, stderr=StringIO())


@pytest.mark.django_db(transaction=True)
def test_two_processes_backfilling_the_same_archive_load_one_copy_of_everything(tmp_path: Path) -> None:
    import subprocess
    import sys

    from django.db import connection

    from tests.conftest import database_url

    archive(tmp_path / "saved", count=6)
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}
    command = [sys.executable, "manage.py", "ingest", "--source", "coinpaprika", "--file", str(tmp_path / "saved")]
    root = Path(__file__).resolve().parents[2]
    both = [
        subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=180) for proc in both]
    assert [proc.returncode for proc in both] == [0, 0], outputs
    assert RawBody.objects.count() == 6 and MarketQuote.objects.count() == 300
    stored = sum(run.raw_stored for run in IngestionRun.objects.filter(status="succeeded"))
    assert stored == 6 and not IngestionRun.objects.exclude(status="succeeded").exists()
    # Each file was loaded by one process and, by the other, either skipped as loaded or found stored.
    assert LoadedFile.objects.count() == 6


def test_the_read_ahead_process_loads_exactly_what_a_run_reading_its_own_file_loads(tmp_path: Path) -> None:
    from crypto.models import QuarantinedRecord

    paths = archive(tmp_path / "saved", count=3)
    broken = orjson.loads(gzip.decompress(paths[1].read_bytes()))
    broken[0]["quotes"] = {}  # one invalid record: quarantined either way
    broken[1]["name"] = "Tab\there\\"
    paths[1].write_bytes(gzip.compress(orjson.dumps(broken)))

    def loaded() -> tuple[list[tuple], ...]:
        from crypto.models import SchemaDrift

        return (
            normalized(),
            sorted(QuarantinedRecord.objects.values_list("where", "index", "reason")),
            sorted(RawBody.objects.values_list("content_hash", "fingerprint", "record_count")),
            sorted(SchemaDrift.objects.values_list("summary", "severity")),
        )

    ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved"))  # three files: read ahead
    ahead = loaded()
    for model in (QuarantinedRecord, MarketQuote, Asset, LoadedFile, RawBody):
        model.objects.all().delete()
    for path in paths:  # one file at a time: each run reads its own
        ingest("--source", "coinpaprika", "--file", str(path))
    assert loaded() == ahead and len(ahead[0]) == 149 and len(ahead[1]) == 1
    assert all(fingerprint["id"] == {"string": 50} for _, fingerprint, _ in ahead[2]), "each body's own shape"
    assert ahead[3] == [], "bodies of one shape: no drift"


def _reader_killed(source: str, path: str) -> None:
    os._exit(1)  # the read-ahead process dies (killed for memory, say)


def test_a_backfill_goes_on_when_its_read_ahead_process_dies(tmp_path: Path, monkeypatch) -> None:
    from crypto.services.ingest import backfill

    monkeypatch.setattr(backfill, "_prepare_ahead", _reader_killed)
    archive(tmp_path / "saved", count=3)
    out, _ = ingest("--source", "coinpaprika", "--file", str(tmp_path / "saved"))
    assert "3 succeeded (3 bodies stored" in out and MarketQuote.objects.count() == 150


def test_folders_and_globs_with_symlink_loops_finish_and_name_each_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crypto.services.ingest.backfill import backfill_paths

    root = tmp_path / "saved"
    (root / "2025" / "01").mkdir(parents=True)
    first, second = root / "2025" / "a.json", root / "2025" / "01" / "b.json.gz"
    first.write_text("[]")
    second.write_bytes(b"")
    (root / "2025" / "01" / "up").symlink_to(root, target_is_directory=True)  # a loop to the top
    (root / "2025" / "back").symlink_to(root / "2025", target_is_directory=True)  # a loop to a parent
    (root / "again.json").symlink_to(first)  # the same file by another name
    (root / "gone.json").symlink_to(root / "missing.json")  # a broken link
    expected = {first.resolve(), second.resolve()}
    for target in [str(root), f"{root}/**/*.json*", f"{root}/**", f"{root}/2025/*/*.gz"]:
        found = backfill_paths(source="coinpaprika", target=target)
        assert len(found) == len({path.resolve() for path in found}), target
        assert {path.resolve() for path in found} <= expected and found, target
    assert {p.resolve() for p in backfill_paths(source="coinpaprika", target=str(root))} == expected
    assert [p.name for p in backfill_paths(source="coinpaprika", target=f"{root}/2025/*/*.gz")] == ["b.json.gz"]
    monkeypatch.chdir(root)
    assert backfill_paths(source="coinpaprika", target="2025/*.json") == [Path("2025/a.json")]
