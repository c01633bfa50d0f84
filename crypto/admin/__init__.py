"""Operators inspect raw bodies, runs and normalized data here. Read-mostly: data comes in through
ingestion, never by hand-editing, so the data views are read-only. One module per part of the
schema (crypto/models): ingestion, market, trust; what they share is in base.py."""

from crypto.admin import ingestion, market, trust
from crypto.admin.base import EstimatedCountPaginator, ReadOnlyAdmin, plain_decimal

__all__ = ["EstimatedCountPaginator", "ReadOnlyAdmin", "ingestion", "market", "plain_decimal", "trust"]
