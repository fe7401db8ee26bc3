"""Driving the console in Debian's Chromium through Playwright: launch, log in, accessibility checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gateway.runner import GatewayApp
from tests.gateway.console.support import AXE, CHROMIUM, OUTPUT_DIR

WALL = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright (its own browser download does not work here)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright (dev extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (.ci/run installs Debian's chromium with apt)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def log_in(
    browser: Any,
    gateway: GatewayApp,
    token: str,
    *,
    locale: str = "en-GB",
    viewport: dict[str, int] = WALL,
    inject_scripts: bool = False,
) -> Any:
    """A new browser context (its own cookies) logged in with ``token``; returns its page on the desk.

    ``inject_scripts``: let the test add axe-core to pages (the console's CSP refuses inline scripts).
    """
    context = browser.new_context(viewport=viewport, locale=locale, bypass_csp=inject_scripts)
    page = context.new_page()
    page.goto(f"{gateway.url}/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/desk.*"))
    return page


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.1 A and AA rules)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def screenshot(page: Any, name: str) -> None:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / f"{name}.png"), full_page=False)
