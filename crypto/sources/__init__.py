"""One module per upstream. Each declares its endpoint, paging and id field, and turns a body
into records with pure functions tested on recorded bodies. Nothing here touches the ORM."""

from __future__ import annotations

from types import ModuleType

from crypto.sources import coingecko, coinpaprika, csvfile

SOURCES: dict[str, ModuleType] = {module.name: module for module in (coingecko, coinpaprika, csvfile)}
SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)


def source_get(*, name: str) -> ModuleType:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; expected one of {', '.join(SOURCE_NAMES)}") from None
