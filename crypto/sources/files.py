"""Saved upstream bodies on disk, for `ingest --file`: plain or gzip-compressed, read as they stream."""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from crypto.sources.body import Body, MalformedBody, SourceError, json_loads


class _Hashing(io.RawIOBase):
    """A file read through: every byte read from disk is hashed and counted."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.sha256, self.size = file, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.file.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.sha256.update(memoryview(buffer)[:count])
            self.size += count
        return count or 0


@dataclass
class SavedStream:
    """A saved file's content as a stream (decompressed if gzip); `read()` says the sha256 and
    size of the bytes read from disk once it is read through."""

    path: str
    stream: BinaryIO
    _disk: Any  # the file as read from disk, buffered
    _hashing: _Hashing

    def read(self) -> tuple[str, int]:
        while self._disk.read(1 << 20):  # what the decompressor left: the digest is the whole file's
            pass
        return self._hashing.sha256.hexdigest(), self._hashing.size


@contextmanager
def saved_stream(path: str) -> Iterator[SavedStream]:
    """Open a saved file to be read as it streams: what was loaded is known by what was read,
    even if the file changes afterwards, and no size of file is held in memory whole."""
    try:
        file = open(path, "rb")  # noqa: SIM115  # closed below, after the caller's reads
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    with file:
        hashing = _Hashing(file)
        disk = io.BufferedReader(hashing, buffer_size=1 << 20)
        compressed = disk.peek(2)[:2] == b"\x1f\x8b"
        stream: BinaryIO = gzip.GzipFile(fileobj=disk, mode="rb") if compressed else disk  # type: ignore[assignment]
        try:
            yield SavedStream(path=path, stream=stream, _disk=disk, _hashing=hashing)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise SourceError(f"{path}: looks gzip-compressed but cannot be decompressed ({exc})") from None
        except OSError as exc:
            raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_bytes(path: str, *, limit: int | None = None) -> tuple[bytes, str, int]:
    """A saved file's whole content (decompressed if gzip), refused past `limit` bytes as it is
    read, with the sha256 and size of the bytes read from disk."""
    with saved_stream(path) as saved:
        content = saved.stream.read() if limit is None else saved.stream.read(limit + 1)
        if limit is not None and len(content) > limit:
            raise SourceError(
                f"{path}: holds more than {limit:,} bytes once decompressed (HTTP_MAX_BODY_BYTES); "
                "refused rather than held in memory"
            )
        digest, size = saved.read()
    return content, digest, size


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


def saved_files(target: str, *, suffixes: tuple[str, ...]) -> list[Path]:
    """The files a folder (walked whole, keeping those with `suffixes`), a glob (`**` for any
    depth) or one file name, each once however many links lead to it, oldest first (modification
    time, then name). Links are followed, but no folder is entered twice: a loop ends there."""
    if glob.has_magic(target):
        base = Path(*[part for part in _parts_before_magic(target)] or ["."])
        pattern = re.compile(_glob_regex(target))
        found = [path for path in _walk(base) if pattern.fullmatch(str(path))]
    elif Path(target).is_dir():
        found = [path for path in _walk(Path(target)) if path.name.endswith(suffixes)]
    elif Path(target).is_file():
        return [Path(target)]
    else:
        raise SourceError(f"{target}: no such file or folder")
    once: dict[tuple[int, int], Path] = {}
    for path in found:
        with contextlib.suppress(OSError):  # a broken link, or gone since the walk
            status = path.stat()
            once.setdefault((status.st_dev, status.st_ino), path)
    return sorted(once.values(), key=lambda path: (path.stat().st_mtime, path.name))


def _walk(root: Path) -> Iterator[Path]:
    entered: set[tuple[int, int]] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        status = os.stat(folder)
        if (status.st_dev, status.st_ino) in entered:
            subfolders[:] = []  # a link back to a folder already walked
            continue
        entered.add((status.st_dev, status.st_ino))
        yield from (Path(folder) / name for name in names)


def _parts_before_magic(pattern: str) -> list[str]:
    parts = Path(pattern).parts
    return list(parts[: next(i for i, part in enumerate(parts) if glob.has_magic(part))])


def _glob_regex(pattern: str) -> str:
    """A glob as a regular expression over whole paths: `**/` any folders (none too), `**` anything,
    `*` and `?` within one name, `[...]` a class of characters."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            inner = pattern[i + 1 : end]
            out.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def modified_at(path: str) -> datetime:
    """A saved body's fetch time is unknown; the file's modification time is the closest fact."""
    return datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)


def json_bodies(path: str, *, count: Callable[[Any], int], limit: int | None = None) -> Iterator[Body]:
    """The saved JSON body at `path` as a Body (at most `limit` bytes); `count` says how many
    records it holds."""
    raw, digest, size = read_bytes(path, limit=limit)
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
