"""The report in a real browser: headless Chromium loads it offline, renders every image, logs no error.

Skips only when /usr/bin/chromium is missing (CI installs Debian's
``chromium``). Set ``VLMSCOPE_REPORT_SHOT=/path.png`` to keep the full-page
screenshot for a human to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.report.cdp import CHROMIUM, chromium_page

from vlmscope.report import INDEX

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is missing: install Debian's chromium to run the browser test"
)
pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium over CDP")


def test_report_renders_in_headless_chromium(full_report: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = full_report
    index = out / INDEX
    with chromium_page(tmp_path / "profile") as page:
        page.call("Runtime.enable")
        page.call("Log.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=index.resolve().as_uri())
        page.wait_event("Page.loadEventFired")

        assert page.evaluate("document.readyState") == "complete"
        assert page.evaluate("document.title") == "vlmscope report"
        n_img = page.evaluate("document.images.length")
        assert n_img == len(list(out.glob("*.png"))) and n_img >= 7
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
        )
        assert broken == []
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)") is True
        # nothing was fetched: every picture is a data: URI, and the page loads no other resource
        assert page.evaluate("performance.getEntriesByType('resource').length") == 0
        assert page.evaluate("document.querySelectorAll('section[id^=study-]').length") == 5
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        # the layout is really applied (inline CSS): tables have collapsed borders
        assert page.evaluate("getComputedStyle(document.querySelector('table')).borderCollapse") == "collapse"

        shot = tmp_path / "shot.png"
        page.screenshot(shot)
        assert page.errors() == []

    with Image.open(shot) as im:
        assert im.width == 1280 and im.height > 3000  # the whole page, not one screen
        pixels = np.asarray(im.convert("L"))
    assert (pixels < 128).mean() > 0.005  # text and plots were painted, not a blank page
    if os.environ.get("VLMSCOPE_REPORT_SHOT"):
        shutil.copyfile(shot, os.environ["VLMSCOPE_REPORT_SHOT"])


def test_browser_catches_a_broken_image(tmp_path: Path) -> None:
    """The check above can fail: a page with a corrupt data: image is reported as broken."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>'
        '<img alt="corrupt" src="data:image/png;base64,iVBORw0KGgoAAAAA"></body></html>'
    )
    with chromium_page(tmp_path / "profile") as page:
        page.call("Runtime.enable")
        page.call("Page.enable")
        page.call("Page.navigate", url=page_file.resolve().as_uri())
        page.wait_event("Page.loadEventFired")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
        )
    assert broken == ["corrupt"]
