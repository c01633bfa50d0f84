"""What a source is: one upstream and every fact about it, which the services ask instead of
branching on its name.

Sources never touch the ORM. A source turns upstream bytes into `Body` objects (stored raw as
received) and a body into `Record` objects (normalized, ready to upsert): crypto/sources/body.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from crypto.sources import files
from crypto.sources.body import TOO_DEEP, Body, Coin, ParseResult, holds_too_deep, json_list, json_objects
from crypto.sources.history import Window


@dataclass(frozen=True)
class FetchContext:
    """What a fetch or a file read needs from the configuration, built by the source itself from
    the settings it names (`Source.fetch_context`), so fetching never reads settings."""

    client: Any = None  # crypto.sources.http.HttpClient; None where no HTTP is needed (files)
    base_url: str = ""
    api_key: str = ""
    pages: int = 1
    per_page: int = 250
    path: str = ""
    chunk_rows: int = 5000
    max_body_bytes: int | None = None  # a saved body larger than this is refused (HTTP_MAX_BODY_BYTES)
    history_interval: str = ""  # the points' interval a history call asks for, where the upstream takes one


class Source:
    """One upstream and every fact about it. The services ask a source and never branch on its
    name: adding a source is one module with one of these, listed in `INGEST_SOURCES`.

    A source never touches the ORM. It turns upstream bytes into `Body` objects (stored raw as
    received) and a body into `Record` objects (normalized, ready to upsert)."""

    name: ClassVar[str]
    label: ClassVar[str]
    # Settings, by name: seconds between scheduled runs, and the calls a minute that every worker
    # together may make (None: the source makes no calls that need a shared budget).
    interval_setting: ClassVar[str]
    calls_per_minute_setting: ClassVar[str | None] = None
    # What a saved file of this source is called, for backfills of folders and globs.
    file_suffixes: ClassVar[tuple[str, ...]] = (".json", ".json.gz")
    # Whether its assets are linked to the same coins of other sources (crypto/services/link/rule.py).
    linked: ClassVar[bool] = False
    # Whether a backfill may read and parse its next file ahead, in another process (a file that
    # is streamed chunk by chunk, of any size, is not).
    read_ahead: ClassVar[bool] = True
    # Where the records sit in a stored body (a JSON path), for reads cut inside the database.
    records_path: ClassVar[str] = "$"
    # The fields it normalizes: schema drift on these is a warning, on the rest information.
    used_fields: ClassVar[frozenset[str]] = frozenset()

    def fetch_context(self, *, settings: Any, client: Any) -> FetchContext:
        """What `fetch` and `read_file` need, from the settings this source reads."""
        return FetchContext(client=client)

    def unconfigured_reason(self, *, settings: Any) -> str | None:
        """Why the source cannot run with these settings (its schedule stays disabled), or None."""
        return None

    def fetch(self, *, context: FetchContext) -> Iterator[Body]:
        raise NotImplementedError

    def read_file(self, *, path: str, context: FetchContext) -> Iterator[Body]:
        """The bodies of a saved file; by default one JSON body, gzip or not."""
        return files.json_bodies(path, count=lambda data: len(self.records(data)), limit=context.max_body_bytes)

    def records(self, data: Any) -> list[Any]:
        """The list of records in a body; a body of another shape is a MalformedBody."""
        raise NotImplementedError

    def parse(self, *, data: Any) -> ParseResult:
        raise NotImplementedError

    def records_view(self, *, items: list[Any], header: Any = None) -> list[Any]:
        """How `/data` shows stored records (a slice at `records_path`)."""
        return items

    # History by coin (crypto/sources/history.py), where the upstream has it.
    def history_span(self, *, context: FetchContext) -> timedelta | None:
        """The longest range one history call may ask for and still get the finest points the
        upstream gives; None when the source has no history API."""
        return None

    def fetch_history(self, *, context: FetchContext, window: Window) -> Body:
        """One window of one coin's history, as the upstream answered it."""
        raise NotImplementedError

    def parse_history(self, *, data: Any, coin: Coin) -> ParseResult:
        """A history body's points as records of `coin`, each at its own time."""
        raise NotImplementedError

    def parse_body(self, *, data: Any, history_of: Coin | None) -> ParseResult:
        """A stored body's records as its kind reads: a window of a coin's history, or the source's own."""
        return self.parse_history(data=data, coin=history_of) if history_of else self.parse(data=data)

    def upstream_ids(self, *, data: Any) -> frozenset[str] | None:
        """The upstream ids a body holds, as a run's comparison with the previous run counts them,
        or None where only parsing tells (the checks then parse the stored bodies)."""
        return None

    def __repr__(self) -> str:
        return f"<source {self.name}>"


class JsonListSource(Source):
    """An upstream that answers a JSON list of record objects, each keyed on its `id`."""

    expected: ClassVar[str]  # said when a body is not such a list

    def records(self, data: Any) -> list[Any]:
        return json_list(data, expected=self.expected)

    def upstream_ids(self, *, data: Any) -> frozenset[str]:
        """Every record that is an object with a string `id`, stripped, when not blank; valid or not.
        crypto/services/monitor/anomalies.py reads the same from stored bodies inside the database."""
        if not isinstance(data, list):
            return frozenset()
        ids = (item["id"].strip() for item in data if isinstance(item, dict) and isinstance(item.get("id"), str))
        return frozenset(filter(None, ids))

    def parse(self, *, data: Any) -> ParseResult:
        result = ParseResult()
        for where, item in json_objects(self.records(data), result):
            refused = len(result.problems)
            self.parse_item(item, where=where, result=result)
            if len(result.problems) > refused and holds_too_deep(item):  # say the cause, not its effect
                result.problems[refused:] = [
                    dataclasses.replace(problem, message=f"{TOO_DEEP['$too_deep']} (cut on arrival); {problem.message}")
                    for problem in result.problems[refused:]
                ]
        return result

    def parse_item(self, item: Mapping[str, Any], *, where: str, result: ParseResult) -> None:
        raise NotImplementedError
