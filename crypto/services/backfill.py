"""Loading saved upstream bodies in bulk: a file, a folder or a glob of them, oldest first.

Each file is its own run: one transaction and the source's lock per file, so an interrupted
backfill keeps what it loaded, and started again it skips those bodies as unchanged (by content
hash) and loads the rest. Nothing is loaded twice; nothing is missing.
"""

from __future__ import annotations

import glob
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crypto.models import IngestionRun
from crypto.services.ingestion import ingestion_run
from crypto.sources.base import SourceError

SUFFIXES = {"csv": (".csv", ".csv.gz"), "coingecko": (".json", ".json.gz"), "coinpaprika": (".json", ".json.gz")}


@dataclass
class BackfillProgress:
    files_total: int
    files_done: int = 0
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    runs: list[IngestionRun] = field(default_factory=list)

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
    *, source: str, files: list[Path], on_file: Callable[[BackfillProgress, IngestionRun], None] | None = None
) -> BackfillProgress:
    progress = BackfillProgress(files_total=len(files))
    for path in files:
        run = ingestion_run(source=source, trigger=IngestionRun.Trigger.FILE, file=str(path), wait_for_lock=True)
        progress.files_done += 1
        progress.records += run.records_fetched
        progress.runs.append(run)
        if on_file is not None:
            on_file(progress, run)
    return progress
