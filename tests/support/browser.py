"""Headless Chromium for the console's browser tests: Debian's chromium driven by Playwright,
and a signed-in page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.support.console import CONSOLE_PASSWORD

CHROMIUM = "/usr/bin/chromium"
MS = 30_000  # Playwright waits (ms): generous, the machine is shared


@asynccontextmanager
async def chromium(*args: str) -> AsyncIterator[Any]:
    """A Chromium browser (closed at the end); ``args``: more command-line switches."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                           args=["--no-sandbox", "--disable-gpu", *args])
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Any, *, width: int = 1500, height: int = 1000,
                   **context: Any) -> Any:
    """A page in a new zh-CN context (``context``: more of Playwright's context options)."""
    ctx = await browser.new_context(viewport={"width": width, "height": height},
                                    locale="zh-CN", **context)
    page = await ctx.new_page()
    page.set_default_timeout(MS)
    return page


async def ready(page: Any) -> None:
    """Until the page's script has set itself up (app.js pageReady): typing before that can be
    overwritten by the script's own defaults or go unheard."""
    await page.wait_for_selector("body[data-ready]", state="attached")


async def login(browser: Any, base: str, user: str, *, page: Any = None, **context: Any
                ) -> Any:
    """``user`` signed in to the console at ``base`` (on ``page``, or a new page)."""
    page = page or await new_page(browser, **context)
    await page.goto(base + "/login")
    await page.fill("#username", user)
    await page.fill("#password", CONSOLE_PASSWORD)
    await page.click("#submit")
    return page
