"""The sources: one module per upstream, each with one `Source` object that owns its facts
(settings, endpoints, paging, ids, rate budget, file suffixes, parsing). Which sources exist is
configuration: `INGEST_SOURCES` lists them by dotted path. Nothing here touches the ORM."""

from __future__ import annotations

import functools

from django.conf import settings
from django.utils.module_loading import import_string

from crypto.sources.base import Source


def sources() -> dict[str, Source]:
    """Every configured source by name, in the order `INGEST_SOURCES` lists them."""
    return _load(tuple(settings.INGEST_SOURCES))


@functools.lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> dict[str, Source]:
    loaded: dict[str, Source] = {}
    for path in paths:
        source = import_string(path)
        if not isinstance(source, Source):
            raise TypeError(f"INGEST_SOURCES: {path} is not a crypto.sources.base.Source")
        loaded[source.name] = source
    return loaded


def source_names() -> tuple[str, ...]:
    return tuple(sources())


def source_choices() -> list[tuple[str, str]]:
    """(name, label) of every source: the choices of each model's `source` field."""
    return [(source.name, source.label) for source in sources().values()]


def source_get(*, name: str) -> Source:
    try:
        return sources()[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; expected one of {', '.join(source_names())}") from None
