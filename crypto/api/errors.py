"""One error shape for every API answer: `{"detail": "...", "errors": {...}?}`; never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DataError, InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DataError):
        # A value the database cannot hold or compare (out of range): the request's fault.
        logger.warning("query parameter out of range: %s", str(exc).strip().splitlines()[0])
        return Response(
            {"detail": "A query parameter is out of range for the data."}, status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, KombuOperationalError):
        logger.error("broker unavailable while answering a request: %s", exc)
        return Response(
            {"detail": "The task broker is unavailable; try again shortly."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is away (down, restarting, unreachable). Other database errors are bugs:
        # they stay 500s, logged with their traceback, rather than pass for an outage.
        logger.error("database unavailable while answering a request", exc_info=exc)
        return Response(
            {"detail": "The database is unavailable; try again shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError) and isinstance(exc.detail, dict):
        errors = response.data
        summary = "; ".join(
            f"{field}: {' '.join(map(str, messages if isinstance(messages, list) else [messages]))}"
            for field, messages in errors.items()
        )
        response.data = {"detail": f"Invalid request: {summary}", "errors": errors}
    return response
