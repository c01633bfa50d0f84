"""The README and docs/ point at files and tests that exist: a move or a rename cannot leave a
guarantee proved by a test that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _links(page: Path) -> list[tuple[str, str]]:
    return [(text, target) for text, target in LINK.findall(page.read_text()) if "://" not in target]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_local_link_of_a_page_names_a_file_that_exists(page: Path) -> None:
    missing = [
        target
        for _, target in _links(page)
        if not target.startswith("#") and not (page.parent / target.split("#")[0]).exists()
    ]
    assert missing == []


def test_every_test_a_guarantee_names_is_defined_in_the_file_it_links() -> None:
    page = ROOT / "docs" / "design.md"
    named = [(text.strip("`"), target) for text, target in _links(page) if text.startswith("`test_")]
    assert len(named) > 10
    gone = [
        f"{name} in {target}"
        for name, target in named
        if not re.search(rf"^def {name}\(", (page.parent / target).read_text(), re.MULTILINE)
    ]
    assert gone == []
