"""Loading saved upstream bodies in bulk: a file, a folder or a glob of them, oldest first.

Each file is its own run: one transaction and the source's lock per file, so an interrupted
backfill keeps what it loaded, and started again it skips those files (known by the sha256 of
their bytes, without parsing them) and loads the rest. Bodies are stored once per content hash
whatever the files say, so nothing is loaded twice; nothing is missing.

While one file is in the database, a second thread reads and parses the next one (pure work: no
database, no shared state), so the CPU work of parsing overlaps PostgreSQL's work of storing.
One file is read ahead at most, so memory does not grow with the archive.
"""

from __future__ import annotations

import glob
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from crypto.models import IngestionRun, LoadedFile
from crypto.services.ingestion import file_bodies, ingestion_run
from crypto.services.storage import PreparedBody, body_prepare
from crypto.sources import source_get
from crypto.sources.base import SourceError
from crypto.sources.files import file_digest

SUFFIXES = {"csv": (".csv", ".csv.gz"), "coingecko": (".json", ".json.gz"), "coinpaprika": (".json", ".json.gz")}


@dataclass
class BackfillProgress:
    files_total: int
    files_done: int = 0
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    runs: list[IngestionRun] = field(default_factory=list)
    already_loaded: list[LoadedFile] = field(default_factory=list)

    @property
    def records_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.records / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.files_done:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.files_done * (self.files_total - self.files_done)


def backfill_paths(*, source: str, target: str) -> list[Path]:
    """The saved bodies `target` names, oldest first (modification time, then name)."""
    suffixes = SUFFIXES[source]
    if any(ch in target for ch in "*?["):
        found = [Path(p) for p in glob.glob(target, recursive=True)]
    elif Path(target).is_dir():
        found = [p for p in Path(target).rglob("*") if p.name.endswith(suffixes)]
    elif Path(target).is_file():
        return [Path(target)]
    else:
        raise SourceError(f"{target}: no such file or folder")
    files = sorted((p for p in found if p.is_file()), key=lambda p: (p.stat().st_mtime, p.name))
    if not files:
        raise SourceError(f"{target}: no saved bodies ({', '.join(suffixes)}) found there")
    return files


def backfill_run(
    *,
    source: str,
    files: list[Path],
    on_file: Callable[[BackfillProgress, IngestionRun | LoadedFile], None] | None = None,
    batch: int = 50,
) -> BackfillProgress:
    """Load each file as its own run, skipping files an earlier run loaded; `on_file` hears of each
    file done, with its run or its earlier load. Files are checked against `loaded_file` a batch
    at a time (one query per batch)."""
    progress = BackfillProgress(files_total=len(files))
    for start in range(0, len(files), batch):
        paths = files[start : start + batch]
        digests = {path: _digest(path) for path in paths}
        known = {digest for digest in digests.values() if digest}
        earlier = {f.digest: f for f in LoadedFile.objects.filter(source=source, digest__in=known)}
        for path in paths:
            if digests[path] in earlier:
                progress.files_done += 1
                progress.already_loaded.append(earlier[digests[path]])
                if on_file is not None:
                    on_file(progress, earlier[digests[path]])
        todo = [path for path in paths if digests[path] not in earlier]
        for path, prepared in _read_ahead(source=source, paths=todo):
            run = ingestion_run(
                source=source,
                trigger=IngestionRun.Trigger.FILE,
                file=str(path),
                wait_for_lock=True,
                prepared=prepared,
            )
            progress.runs.append(run)
            progress.records += run.records_fetched
            progress.files_done += 1
            if on_file is not None:
                on_file(progress, run)
    return progress


def _digest(path: Path) -> str:
    """The file's sha256, or "" when it cannot be read: its run will fail and say why."""
    try:
        return file_digest(str(path))[0]
    except SourceError:
        return ""


def _prepare(source: str, path: Path) -> list[PreparedBody] | Exception:
    """A file's bodies read, hashed and parsed: everything but the database. A file that cannot be
    read comes back as its error, raised later inside its own run so the run records it."""
    parse = source_get(name=source).parse
    try:
        return [body_prepare(body, parse=parse) for body in file_bodies(source=source, path=str(path))]
    except Exception as exc:  # the run reports it, exactly as if it had read the file itself
        return exc


def _replay(prepared: list[PreparedBody] | Exception) -> Iterator[PreparedBody]:
    if isinstance(prepared, Exception):
        raise prepared
    yield from prepared


def _read_ahead(*, source: str, paths: Iterable[Path]) -> Iterator[tuple[Path, Iterable[PreparedBody] | None]]:
    """(path, its prepared bodies) in order, the next file prepared in a thread meanwhile. CSV files
    are streamed chunk by chunk by their run instead (None): a CSV file can be any size."""
    if source == "csv":
        yield from ((path, None) for path in paths)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-read") as pool:
        pending: deque[tuple[Path, Future[list[PreparedBody] | Exception]]] = deque()
        remaining = iter(paths)
        for path in remaining:
            pending.append((path, pool.submit(_prepare, source, path)))
            break
        while pending:
            path, future = pending.popleft()
            for upcoming in remaining:
                pending.append((upcoming, pool.submit(_prepare, source, upcoming)))
                break
            yield path, _replay(future.result())
