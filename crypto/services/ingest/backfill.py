"""Loading saved upstream bodies in bulk: a file, a folder or a glob of them, oldest first.

Each file is its own run: one transaction and the source's lock per file, so an interrupted
backfill keeps what it loaded, and started again it skips those files (known by the sha256 of
their bytes, without parsing them) and loads the rest. Bodies are stored once per content hash
whatever the files say, so nothing is loaded twice; nothing is missing.

On PostgreSQL, while one file is in the database, a second process reads and parses the next one
(pure work: no database), so Python's work of parsing runs beside PostgreSQL's work of storing,
on another core. It hands back bytes and text only (canonical JSON, COPY text of the records, the
problems). One file is read ahead at most, so memory does not grow with the archive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections

from crypto.models import IngestionRun, LoadedFile
from crypto.services.ingest.bulk import stage_text
from crypto.services.ingest.prepare import PreparedBody, body_prepare
from crypto.services.ingest.run import file_bodies, ingestion_run, saved_file
from crypto.sources import source_get
from crypto.sources.body import ParseResult, SourceError
from crypto.sources.files import file_digest, saved_files

logger = logging.getLogger(__name__)


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
        return pace(records=self.records, started=self.started, ended=self.files_done, total=self.files_total)[0]

    @property
    def eta_seconds(self) -> float | None:
        return pace(records=self.records, started=self.started, ended=self.files_done, total=self.files_total)[1]


def pace(*, records: int, started: float, ended: int, total: int) -> tuple[float, float | None]:
    """Records a second since `started` (time.monotonic), and the seconds left at the rate the
    `ended` of `total` pieces took (None before the first ends)."""
    elapsed = time.monotonic() - started
    rate = records / elapsed if elapsed > 0 else 0.0
    return rate, (elapsed / ended * (total - ended) if ended else None)


def backfill_paths(*, source: str, target: str) -> list[Path]:
    """The saved bodies `target` names (a file, a folder, a glob), each once, oldest first."""
    suffixes = source_get(name=source).file_suffixes
    files = saved_files(target, suffixes=suffixes)
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
    with contextlib.ExitStack() as stack:
        reader = _reader(source=source, files=len(files))
        if reader is not None:
            stack.enter_context(reader)
        for start in range(0, len(files), batch):
            _batch_load(
                source=source, paths=files[start : start + batch], progress=progress, on_file=on_file, reader=reader
            )
    return progress


def _batch_load(
    *,
    source: str,
    paths: list[Path],
    progress: BackfillProgress,
    on_file: Callable[[BackfillProgress, IngestionRun | LoadedFile], None] | None,
    reader: ProcessPoolExecutor | None,
) -> None:
    """One batch of files: those already loaded are skipped (one query for the batch), the rest
    loaded in order, one run each."""
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
    for path, prepared in _read_ahead(source=source, paths=todo, reader=reader):
        run = ingestion_run(
            source=source, trigger=IngestionRun.Trigger.FILE, origin=saved_file(path=str(path), prepared=prepared)
        )
        progress.runs.append(run)
        progress.records += run.records_fetched
        progress.files_done += 1
        if on_file is not None:
            on_file(progress, run)


def _digest(path: Path) -> str:
    """The file's sha256, or "" when it cannot be read: its run will fail and say why."""
    try:
        return file_digest(str(path))[0]
    except SourceError:
        return ""


def _prepare_ahead(source: str, path: str) -> list[PreparedBody] | Exception:
    """In the read-ahead process: the file's bodies ready for the database. An error comes back as
    a SourceError with its words, raised later inside the file's own run so the run records it."""
    try:
        module = source_get(name=source)
        prepared = []
        for body in file_bodies(source=source, path=path):
            ready = body_prepare(body)
            parsed = module.parse(data=ready.data)
            prepared.append(
                dataclasses.replace(
                    ready,
                    body=dataclasses.replace(body, data=None),
                    data=None,
                    parsed=ParseResult(problems=parsed.problems),
                    staged=stage_text(parsed.records, default_time=body.fetched_at),
                    staged_records=len(parsed.records),
                    upstream_ids=module.upstream_ids(data=ready.data),
                )
            )
        return prepared
    except SourceError as exc:
        return exc
    except Exception as exc:  # a bug, not bad data: its traceback is logged here, its words go back
        logger.exception("reading ahead %s failed", path)
        return SourceError(f"{type(exc).__name__}: {exc}")


def _replay(prepared: list[PreparedBody] | Exception) -> Iterator[PreparedBody]:
    if isinstance(prepared, Exception):
        raise prepared
    yield from prepared


def _reader_start() -> None:
    """In the forked read-ahead process, first thing: let go of the database sockets it inherited
    (closing a descriptor says nothing to the server, and the parent's copy stays open), so that
    if the parent dies its session ends with it and its locks are freed; and exit when the parent
    does rather than linger."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            with contextlib.suppress(OSError):
                os.close(conn.connection.fileno())
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _reader(*, source: str, files: int) -> ProcessPoolExecutor | None:
    """The read-ahead process, where it pays: JSON bodies (a CSV file is streamed chunk by chunk by
    its run: it can be any size), and more than one file."""
    if not source_get(name=source).read_ahead or files < 2:
        return None
    # Forked, so it starts with Django set up; it never uses the database (see _reader_start).
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"), initializer=_reader_start)


def _read_ahead(
    *, source: str, paths: list[Path], reader: ProcessPoolExecutor | None
) -> Iterator[tuple[Path, Iterable[PreparedBody] | None]]:
    """(path, its prepared bodies) in order, the next file prepared meanwhile; (path, None) for the
    run to read the file itself when there is no reader, or when the reader died (it was killed,
    say, for memory): the backfill goes on without it."""
    pending: Future[list[PreparedBody] | Exception] | None = None
    for index, path in enumerate(paths):
        try:
            if reader is not None and pending is None:
                pending = reader.submit(_prepare_ahead, source, str(path))
            current, pending = pending, None
            if reader is not None and index + 1 < len(paths):
                pending = reader.submit(_prepare_ahead, source, str(paths[index + 1]))
            yield path, (_replay(current.result()) if current is not None else None)
        except BrokenProcessPool:
            logger.warning("the read-ahead process stopped; the backfill goes on reading each file in its run")
            reader, pending = None, None
            yield path, None
