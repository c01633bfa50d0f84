"""Property-based contract check: schemathesis generates requests from the OpenAPI schema, valid
and invalid, and every answer must be no server error and match the schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from crypto.services.ingest.run import ingestion_run, saved_file
from kasparro.wsgi import application
from tests.conftest import GECKO_PAGE, PAPRIKA, UPSTREAM

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def seeded(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Real data behind the API (committed, so every generated request sees it), removed after."""
    with django_db_blocker.unblock():
        for source, name in (("coinpaprika", PAPRIKA), ("coingecko", GECKO_PAGE)):
            ingestion_run(source=source, trigger="file", origin=saved_file(path=str(UPSTREAM / name)))
        ingestion_run(
            source="csv", trigger="file", origin=saved_file(path=str(UPSTREAM.parent / "csv" / "simple_markets.csv"))
        )
        yield
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Requests sent straight to the WSGI app must not close the test's database connection at
    their end, as Django's own test client arranges for its requests."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


# The schema is served by the app itself (no database involved) and the requests go to it in process.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.mark.django_db
@pytest.mark.usefixtures("seeded", "in_process_requests")
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_generated_from_the_schema_gets_a_server_error_or_an_off_schema_answer(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


def test_the_docs_draw_a_lock_only_on_operations_that_need_a_token_or_session(client: Any) -> None:
    paths = client.get("/api/schema/?format=json").json()["paths"]
    secured = {
        (path, method) for path, operations in paths.items() for method, op in operations.items() if op.get("security")
    }
    assert secured == {("/api/runs/", "post")}
