"""report.html opened in a real headless Chromium: the string checks of test_report.py cannot
see a data URI the browser refuses, a plot pushed off the page by CSS or an image that decodes
to white, and a reader can.

Needs Debian's `chromium` (`.ci/run` installs it) and the `playwright` package (in
requirements.lock; only its driver is used, never `playwright install`'s browsers); it skips,
saying which is missing, without them. The full-page screenshot is kept in
`$COMPRESSOR_TEST_ARTIFACTS` (default `.test-artifacts/`) for a person to look at.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmarks.report import Report, plots, write_report
from benchmarks.report.sections import report_parts
from tests.test_report import full_report

try:
    from playwright.sync_api import ConsoleMessage, Page, sync_playwright
except ImportError:  # the test skips with the reason below
    sync_playwright = None

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
# Without the background-networking flags Chromium dials Google's services at start, and this
# machine's closed network refuses the connections; the sandbox needs a non-root user.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
TIMEOUT_MS = 20_000
# A matplotlib figure has a white background, black axes, text and coloured marks: hundreds of
# colours once anti-aliased. A blank, transparent or single-colour image has one or two.
MIN_COLOURS = 16
MIN_STD = 5.0
# Drawn 1:1, Chromium puts the PNG's pixels on screen unchanged (the element's box at a
# fractional y adds one row around them): another plot differs by 10+ levels on average.
# Scaled by CSS, resampling blurs edges, so the comparison is looser there.
MAX_DIFF_1TO1 = 1.0
MAX_DIFF_SCALED = 8.0

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: apt-get install chromium"),
    pytest.mark.skipif(
        sync_playwright is None,
        reason="playwright not importable: pip install -r requirements.lock",
    ),
]

# Where each <img> really is on the rendered page, in page coordinates, so a plot scrolled
# off, hidden by CSS or collapsed to nothing is caught, not just one missing from the HTML.
IMAGES_JS = """() => {
  const doc = document.documentElement;
  return {
    width: doc.scrollWidth,
    height: doc.scrollHeight,
    images: Array.from(document.images, (img) => {
      const box = img.getBoundingClientRect();
      return {
        alt: img.alt,
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
        left: box.left + window.scrollX,
        top: box.top + window.scrollY,
        width: box.width,
        height: box.height,
        visible: img.checkVisibility({opacityProperty: true, visibilityProperty: true}),
      };
    }),
  };
}"""


def plotted_report() -> dict[str, Any]:
    """test_report's full report plus a pruning trace: the gap plot is drawn only beside the
    pruning section, and every plot kind the product draws must be on the page."""
    report = full_report()
    report["pruning"] = {
        "source": "/runs/student/model",
        "criterion": "sensitivity",
        "targets": {"non_embedding_parameters": 5_600_000},
        "schedule": {"begin": 0, "end": 200, "every": 10},
        "architecture": {"hidden_size": 384, "intermediate_size": 768, "heads_per_layer": [6, 6]},
        "shrink_max_abs_diff": 2.1e-6,
        "trace": [
            {"step": step, "probe_kl": 0.002 * step**0.5, "remaining": 1.0 - step / 400}
            for step in range(0, 201, 20)
        ],
    }
    return report


def artifacts_dir() -> Path:
    """A stable folder a person can open after the run (pytest's tmp_path is pruned)."""
    folder = Path(os.environ.get("COMPRESSOR_TEST_ARTIFACTS") or ROOT / ".test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def difference(shot: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    """Mean |pixel difference| between a plot on screen and its PNG, at the best of the
    one-pixel offsets a fractional box adds, and the tolerance that applies: which plot it
    is, not only that something non-blank is there."""
    (h, w), (shot_h, shot_w) = source.shape[:2], shot.shape[:2]
    if 0 <= shot_h - h <= 2 and 0 <= shot_w - w <= 2:
        offsets = [(y, x) for y in range(shot_h - h + 1) for x in range(shot_w - w + 1)]
        best = min(float(np.abs(shot[y : y + h, x : x + w] - source).mean()) for y, x in offsets)
        return best, MAX_DIFF_1TO1
    resized = Image.fromarray(source.astype(np.uint8)).resize((shot_w, shot_h))
    return float(np.abs(shot - np.asarray(resized, dtype=np.float64)).mean()), MAX_DIFF_SCALED


def watch(page: Page) -> list[str]:
    """Everything the page reports as going wrong: console errors, uncaught exceptions and
    failed loads (a data URI the browser rejects shows up as one of these)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            where = str(message.location.get("url", ""))[:80]  # a data URI runs to megabytes
            problems.append(f"console.{message.type}: {message.text[:200]} (at {where})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))
    page.on("crash", lambda _page: problems.append("page crashed"))
    return problems


def test_report_renders_every_plot_in_chromium(
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = Report.model_validate(plotted_report())
    drawn = [image for part in report_parts(report) for image in part.images]
    # a plot kind added to plots.py must be added to plotted_report() too
    kinds = {value for name, value in vars(plots).items() if name.endswith("_TITLE")}
    assert {image.alt for image in drawn} == kinds
    page_path = write_report(tmp_path, report)["html"]

    out = artifacts_dir()
    screenshot = out / "report-browser.png"
    shutil.copyfile(page_path, out / "report-browser.html")
    record_property("screenshot", str(screenshot))
    with capsys.disabled():
        print(f"\nreport screenshot: {screenshot}")

    assert sync_playwright is not None and CHROMIUM is not None  # for the type checker
    with sync_playwright() as driver:
        # launch() gives every run a fresh temporary profile (user data dir) of its own
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(TIMEOUT_MS)
            problems = watch(page)
            page.goto(page_path.as_uri(), wait_until="load")
            # one full-page screenshot, taken before any check so a failing page is kept too;
            # each plot is cut from it, where it really is on the page, so a hidden plot fails
            # an assertion below instead of stalling a per-element screenshot
            page.screenshot(path=str(screenshot), full_page=True)
            layout = page.evaluate(IMAGES_JS)
        finally:
            browser.close()

    assert problems == [], problems
    full = Image.open(screenshot).convert("RGB")
    assert full.size == (VIEWPORT["width"], layout["height"])
    images = layout["images"]
    assert [img["alt"] for img in images] == [image.alt for image in drawn]
    for img, image in zip(images, drawn, strict=True):
        name = img["alt"]
        source = pixels(image.png)
        assert img["complete"], name
        assert (img["naturalHeight"], img["naturalWidth"]) == source.shape[:2], name
        assert img["visible"], name
        assert img["width"] > 0 and img["height"] > 0, name
        assert img["left"] >= 0 and img["left"] + img["width"] <= layout["width"] + 0.5, name
        assert img["top"] >= 0 and img["top"] + img["height"] <= layout["height"] + 0.5, name

        box = (
            math.floor(img["left"]),
            math.floor(img["top"]),
            math.ceil(img["left"] + img["width"]),
            math.ceil(img["top"] + img["height"]),
        )
        shown = np.asarray(full.crop(box), dtype=np.float64)
        colours = len(np.unique(shown.reshape(-1, 3), axis=0))
        assert colours >= MIN_COLOURS, f"{name}: {colours} colours"
        assert shown.std() >= MIN_STD, f"{name}: pixel std {shown.std():.1f}"
        diff, tolerance = difference(shown, source)
        assert diff <= tolerance, f"{name}: mean |pixel diff| {diff:.1f} from its PNG"
