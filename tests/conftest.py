from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import responses
from responses import matchers

FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM = FIXTURES / "upstream"
GECKO_PAGE = "coingecko_markets_southpawbob.json"  # 250 records, a full page
GECKO_SMALL = "coingecko_markets_madjin.json"  # 100 records
PAPRIKA = "coinpaprika_tickers_greenyun2.json"  # 2,500 tickers
CSV_GECKO = "coingecko_markets_csv_Global-rd.csv"  # 250 rows, flattened /coins/markets


def upstream_bytes(name: str) -> bytes:
    return (UPSTREAM / name).read_bytes()


def upstream_json(name: str) -> object:
    return orjson.loads(upstream_bytes(name))


@pytest.fixture(autouse=True)
def quick_http(settings: object) -> None:
    """Real retry logic with delays short enough for tests."""
    settings.HTTP_BACKOFF_BASE = 0.01  # type: ignore[attr-defined]
    settings.HTTP_BACKOFF_CAP = 0.05  # type: ignore[attr-defined]
    settings.HTTP_MAX_ATTEMPTS = 3  # type: ignore[attr-defined]
    settings.COINGECKO_PAGES = 2  # type: ignore[attr-defined]
    settings.COINGECKO_API_KEY = ""  # type: ignore[attr-defined]
    settings.COINPAPRIKA_API_KEY = ""  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def budget_unspent() -> None:
    """Each test starts with the upstreams' budgets unspent and unpaused, as a new process does
    (in embedded mode the budget is one per process: the tests share a process)."""
    from crypto.sources import ratelimit

    ratelimit._IN_PROCESS.reset()
    ratelimit._PAUSES.clear()


@pytest.fixture(autouse=True, scope="session")
def metrics_of_this_session() -> None:
    """/metrics adds up the files of every process: start from none, as `make run` does."""
    from crypto.services.monitor.metrics import metrics_files_clear

    metrics_files_clear()


@pytest.fixture(autouse=True)
def unthrottled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests make many requests from one address; the throttling tests set their own rates."""
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": None, "user": None, "trigger": None})
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A folder for an embedded PostgreSQL cluster (its `pgdata`), stopped and removed afterwards.
    Not under pytest's tmp_path: as root the server runs as another user, who must enter it."""
    import shutil
    import tempfile

    from kasparro.embedded_db import EmbeddedPostgres

    path = Path(tempfile.mkdtemp(prefix="kasparro-embedded-test-"))
    yield path
    EmbeddedPostgres(data_dir=path / "pgdata", port=0).stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def triggers_sent_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triggers are sent when the caller's transaction commits; a test's own transaction never
    does, so send them at once, as autocommit does outside a test (their timing has its own test)."""
    monkeypatch.setattr("crypto.services.ingest.enqueue.on_commit", lambda send, **kwargs: send())


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """The network, mocked at the requests seam; any unmocked call fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def gecko_url() -> str:
    from django.conf import settings

    return settings.COINGECKO_BASE_URL + "/coins/markets"


def paprika_url() -> str:
    from django.conf import settings

    return settings.COINPAPRIKA_BASE_URL + "/tickers"


def mock_gecko_page(http: responses.RequestsMock, page: int, body: bytes, status: int = 200, **kwargs: object) -> None:
    http.add(
        responses.GET,
        gecko_url(),
        body=body,
        status=status,
        content_type=kwargs.pop("content_type", "application/json"),  # type: ignore[arg-type]
        match=[matchers.query_param_matcher({"page": str(page)}, strict_match=False)],
        **kwargs,
    )


def mock_gecko_two_pages(http: responses.RequestsMock, first: bytes | None = None) -> None:
    """Page 1 is the recorded 250-record page; page 2 the 100-record one, so the run stops there."""
    mock_gecko_page(http, 1, first or upstream_bytes(GECKO_PAGE))
    mock_gecko_page(http, 2, upstream_bytes(GECKO_SMALL))


def mock_paprika(http: responses.RequestsMock, body: bytes | None = None, status: int = 200) -> None:
    http.add(
        responses.GET,
        paprika_url(),
        body=body or upstream_bytes(PAPRIKA),
        status=status,
        content_type="application/json",
    )


def database_url(settings_dict: dict) -> str:
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    return (
        f"postgres://{settings_dict['USER']}{password}@{settings_dict['HOST']}:{settings_dict['PORT']}/"
        f"{settings_dict['NAME']}"
    )
