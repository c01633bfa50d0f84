"""Loading saved upstream bodies in bulk: a file, a folder or a glob of them, oldest first.

Each file is its own run: one transaction and the source's lock per file, so an interrupted
backfill keeps what it loaded, and started again it skips those files (known by the sha256 of
their bytes, without parsing them) and loads the rest. Bodies are stored once per content hash
whatever the files say, so nothing is loaded twice; nothing is missing.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crypto.models import IngestionRun, LoadedFile
from crypto.services.ingestion import ingestion_run
from crypto.services.storage import loaded_file_find
from crypto.sources.base import SourceError

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
) -> BackfillProgress:
    """Load each file as its own run, skipping files an earlier run loaded; `on_file` hears of each
    file done, with its run or its earlier load."""
    progress = BackfillProgress(files_total=len(files))
    for path in files:
        done: IngestionRun | LoadedFile
        earlier = loaded_file_find(source=source, path=str(path))
        if earlier is not None:
            done = earlier
            progress.already_loaded.append(earlier)
        else:
            done = ingestion_run(source=source, trigger=IngestionRun.Trigger.FILE, file=str(path), wait_for_lock=True)
            progress.runs.append(done)
            progress.records += done.records_fetched
        progress.files_done += 1
        if on_file is not None:
            on_file(progress, done)
    return progress
