"""Data behind the dashboard's pages: both recorded sources loaded as files (so coins are linked
across them), a coin with a long history, and a run still going."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from crypto.models import Asset, IngestionRun, MarketQuote
from crypto.services.ingest.run import ingestion_run, saved_file
from tests.conftest import GECKO_PAGE, PAPRIKA, UPSTREAM, upstream_json


def load(path: Path, source: str) -> IngestionRun:
    run = ingestion_run(source=source, trigger="file", origin=saved_file(path=str(path)))
    assert run.status == "succeeded", run.error
    return run


@pytest.fixture
def market(tmp_path: Path) -> dict[str, object]:
    """Both recorded sources, CoinPaprika twice (an hour apart, Bitcoin 10% up in the second), and
    5,000 hourly history points of Bitcoin on CoinGecko near CoinPaprika's first price."""
    load(UPSTREAM / GECKO_PAGE, "coingecko")
    first = load(UPSTREAM / PAPRIKA, "coinpaprika")
    later = upstream_json(PAPRIKA)
    assert isinstance(later, list)
    for ticker in later:
        ticker["last_updated"] = ticker["last_updated"].replace("T08:", "T09:")
    later[0]["quotes"]["USD"]["price"] *= 1.1
    (tmp_path / "later.json").write_bytes(orjson.dumps(later))
    second = load(tmp_path / "later.json", "coinpaprika")
    bitcoin = Asset.objects.get(source="coingecko", upstream_id="bitcoin")
    start = datetime(2023, 8, 1, tzinfo=UTC)  # its hours cover CoinPaprika's two bodies of 2023-08-11
    MarketQuote.objects.bulk_create(
        MarketQuote(
            asset=bitcoin,
            source="coingecko",
            last_updated=start + timedelta(hours=n),
            price_usd=Decimal(29400) + Decimal(n) / 100,
            market_cap_usd=Decimal(4 * 10**11),
            volume_24h_usd=Decimal(10**10),
            history=True,
        )
        for n in range(5000)
    )
    running = IngestionRun.objects.create(source="coingecko", trigger="task", task_id="t-1")
    return {"bitcoin": bitcoin, "first": first, "second": second, "running": running}
