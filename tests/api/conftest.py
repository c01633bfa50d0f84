"""What the API tests share."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def api() -> Client:
    """A client that asks for JSON, as scripts do."""
    return Client(HTTP_ACCEPT="application/json")
