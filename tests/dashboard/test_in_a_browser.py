"""Every page of the front page and the dashboard opened in a real browser (Debian's Chromium,
driven by Playwright): it renders, each chart draws its series, the console stays free of errors,
and no request leaves 127.0.0.1 (the chart library is vendored: the pages work offline).
Screenshots are kept in test-artifacts/screenshots/."""

from __future__ import annotations

import shutil
from typing import Any
from urllib.parse import urlparse

import pytest

from crypto.models import Asset
from tests.processes import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
SHOTS = ROOT / "test-artifacts" / "screenshots"


def test_every_page_renders_draws_its_charts_logs_no_error_and_asks_only_this_server(
    live_server: Any, market: dict[str, Any]
) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "scripts/with-services.sh installs Debian's chromium"
    coin = Asset.objects.get(source="coinpaprika", upstream_id="btc-bitcoin").pk
    pages = {
        "front": ("/", "Home", []),
        "overview": ("/dashboard/", "Dashboard", ["timeline"]),
        "coin": (f"/dashboard/coins/{coin}/", "Bitcoin", ["price", "market"]),
        "search": ("/dashboard/search/?q=btc", "Search", []),
        "run": (f"/dashboard/runs/{market['second'].pk}/", f"Run #{market['second'].pk}", []),
        "running": (f"/dashboard/runs/{market['running'].pk}/", "In progress", []),
    }
    SHOTS.mkdir(parents=True, exist_ok=True)
    server = urlparse(live_server.url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            asked: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: asked.append(request.url))
            for name, (path, words, charts) in pages.items():
                response = page.goto(live_server.url + path)
                assert response is not None and response.status == 200, f"{name}: {response and response.status}"
                page.wait_for_load_state("networkidle")
                assert words in page.content(), f"{name}: {words!r} not on the page"
                drawn = {chart["name"]: chart for chart in page.evaluate("window.kasparroCharts || []")}
                assert set(drawn) == set(charts), f"{name}: charts drawn {sorted(drawn)}"
                for chart in drawn.values():
                    assert chart["series"] >= 1 and chart["points"] > 0, f"{name}: {chart}"
                    canvas = page.locator(".uplot canvas").first
                    assert canvas.bounding_box() is not None and canvas.bounding_box()["width"] > 300
                page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
                assert not errors, f"{name}: console errors {errors}"
            elsewhere = [
                url for url in asked if urlparse(url).scheme != "data" and urlparse(url).netloc != server.netloc
            ]
            assert not elsewhere, f"requests left {server.netloc}: {elsewhere}"
            assert any(url.endswith("uPlot.iife.min.js") for url in asked), "the vendored chart library is served here"
        finally:
            browser.close()
    assert {path.name for path in SHOTS.glob("*.png")} >= {f"{name}.png" for name in pages}
