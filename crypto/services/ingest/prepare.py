"""A body made ready to store by pure work, before the database is involved: in the run, or in a
backfill's read-ahead process while the previous body is being written."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from crypto.sources.body import Body, ParseResult, canonical_json, without_nul
from crypto.sources.fingerprint import fingerprint


@dataclass(frozen=True)
class PreparedBody:
    """A body made ready to store, by pure work done before the database is involved: the body as
    it will be stored, its canonical JSON, content hash and fingerprint, and (when read ahead by a
    backfill) its parse. A backfill's read-ahead process sends the valid records as COPY text
    (`staged`) and only the problems in `parsed`, and drops `data`: records and bodies cost more
    to send between processes than to parse."""

    body: Body
    data: Any  # the body as stored (NUL removed), what parsing must read; None once staged
    canonical: bytes
    digest: str
    nul_removed: bool
    fingerprint: dict[str, Any] | None  # None: not compared for drift (history: no like to compare with)
    parsed: ParseResult | None = None
    staged: str | None = None  # the valid records for the staging table (crypto/services/ingest/bulk.py)
    staged_records: int = 0
    upstream_ids: frozenset[str] | None = None  # read ahead with the parse: `Source.upstream_ids`


def body_prepare(body: Body) -> PreparedBody:
    # One canonical serialization (a 2 MB body takes milliseconds) serves the NUL check and the hash.
    data, canonical = body.data, canonical_json(body.data)
    nul_removed = b"\\u0000" in canonical
    if nul_removed:
        # PostgreSQL text and jsonb cannot hold NUL; one would otherwise fail the whole run.
        data = without_nul(data)
        canonical = canonical_json(data)
    return PreparedBody(
        body=body,
        data=data,
        canonical=canonical,
        digest=hashlib.sha256(canonical).hexdigest(),
        nul_removed=nul_removed,
        # History is not compared for drift: the previous body at its position is another coin's,
        # or a live one of another shape.
        fingerprint=None if body.history_of else fingerprint(data),
    )
