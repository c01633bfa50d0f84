"""Saved upstream bodies on disk, for `ingest --file`: plain or gzip-compressed JSON."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crypto.sources.body import Body, MalformedBody, SourceError, json_loads


def read_bytes(path: str) -> tuple[bytes, str, int]:
    """A saved file's content (decompressed if gzip), with the sha256 and size of the bytes read
    from disk: what was loaded is known by what was read, even if the file changes afterwards."""
    file = Path(path)
    if not file.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    digest, size = hashlib.sha256(raw).hexdigest(), len(raw)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise SourceError(f"{path}: looks gzip-compressed but cannot be decompressed ({exc})") from None
    return raw, digest, size


def file_digest(path: str) -> tuple[str, int]:
    """sha256 of a file's bytes as on disk (compressed or not), and its size: how a backfill knows
    a file it already loaded, wherever it now lies."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    return digest.hexdigest(), size


def modified_at(path: str) -> datetime:
    """A saved body's fetch time is unknown; the file's modification time is the closest fact."""
    return datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)


def json_bodies(path: str, *, count: Callable[[Any], int]) -> Iterator[Body]:
    """The saved JSON body at `path` as a Body; `count` says how many records it holds."""
    raw, digest, size = read_bytes(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        data = json_loads(raw)
    except ValueError as exc:
        raise MalformedBody(f"{path}: not valid JSON ({exc})") from None
    yield Body(
        data=data,
        request=f"file:{Path(path).resolve()}",
        position=1,
        fetched_at=modified_at(path),
        record_count=count(data),
        file_digest=digest,
        file_size=size,
    )
