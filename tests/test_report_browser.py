"""The published report in a real browser (headless Chromium, opened from file://).

How it is checked, and why this way (no DevTools client needed, only Chromium's command line):
- rendering: `--dump-dom` after `--virtual-time-budget` serialises the page once every chart has been drawn
  (charts are drawn one after another by the page's own script); every `div.plot` must contain plotly's
  `main-svg` and none may carry `data-failed`;
- console: with `--enable-logging=stderr --v=0` Chromium writes every console message of the page as a
  `CONSOLE` line naming its source, and uncaught exceptions as "Uncaught ..."; the report logs nothing, so any
  such line from the report is a failure (a CSP violation would show up here too);
- network: `--log-net-log` records every request the browser starts. Chromium itself talks to Google
  (component updates, time sync) whatever the flags say, so only requests made on behalf of the page count:
  those whose network isolation key is the file:// page. `test_network_check_is_not_vacuous` proves the
  detector finds a page's request when there is one;
- phone: a 390×844 screenshot of the first screen (`--window-size=390,844 --screenshot`), kept under
  `$TONGXING_SCREENSHOT_DIR` when that is set, so a person can look at it.

Chromium is found at /usr/bin/chromium (or on PATH); `make test` installs it. Without it the tests skip loudly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from test_report import synthetic_context

from pipelines.report import publish_quarter

pytestmark = pytest.mark.browser

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PAGE_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-error:")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
if CHROMIUM is None:
    pytest.skip("\n\n*** BROWSER TESTS SKIPPED: Chromium not found (looked for /usr/bin/chromium, chromium, "
                "chromium-browser, google-chrome). Install it with `apt-get install -y chromium` — "
                "`make test` does this. ***\n", allow_module_level=True)


def run_chromium(url: str, workdir: Path, *extra: str, timeout: int = 180) -> subprocess.CompletedProcess:
    profile = workdir / f"profile-{len(list(workdir.glob('profile-*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")


def page_requests(netlog: Path) -> list[str]:
    """URLs of requests made on behalf of a file:// page (not Chromium's own background traffic)."""
    log = json.loads(netlog.read_text(encoding="utf-8", errors="replace"))
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if kinds.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        url = str(params.get("url", ""))
        from_page = "file://" in str(params.get("network_isolation_key", "")) or params.get("initiator") == "null"
        if from_page and not url.startswith(PAGE_SCHEMES):
            urls.append(url)
    return urls


def console_lines(stderr: str, page: Path) -> list[str]:
    return [line for line in stderr.splitlines()
            if (re.search(r"CONSOLE[(:]", line) and page.name in line) or "Uncaught" in line]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "2025Q4"
    publish_quarter(out, synthetic_context())
    return out


@pytest.mark.parametrize("name", ["report.html", "report.en.html"])
def test_report_renders_every_chart_quietly_and_offline(site, tmp_path, name):
    page = site / name
    netlog = tmp_path / "net.json"
    result = run_chromium(page.as_uri(), tmp_path, "--virtual-time-budget=30000", "--enable-logging=stderr",
                          "--v=0", f"--log-net-log={netlog}", "--window-size=390,844", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    charts = re.findall(r'<div class="plot[^"]*" id="(chart-\d+)"[^>]*>', dom)
    expected = re.findall(r'<div class="plot" id="(chart-\d+)"', page.read_text(encoding="utf-8"))
    assert len(expected) >= 8 and charts == expected
    pieces = re.split(r'<div class="plot[^"]*" id="chart-\d+"', dom)[1:]
    for cid, piece in zip(charts, pieces):
        body = piece.split('<script type="application/json"', 1)[0]
        assert 'class="main-svg"' in body, f"{name}: {cid} has no rendered svg"
    assert 'data-failed="true"' not in dom
    assert console_lines(result.stderr, page) == []
    assert page_requests(netlog) == [], "the report asked the network for something"


def test_network_check_is_not_vacuous(tmp_path):
    page = tmp_path / "probe.html"
    page.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/x.png"><script>console.log("hello")</script>',
                    encoding="utf-8")
    netlog = tmp_path / "net.json"
    result = run_chromium(page.as_uri(), tmp_path, "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0",
                          f"--log-net-log={netlog}", "--dump-dom")
    assert any("127.0.0.1:9" in url for url in page_requests(netlog))
    assert console_lines(result.stderr, page), "console lines of the page are visible on stderr"


def test_phone_first_screen_screenshot(site, tmp_path):
    shot = tmp_path / "phone.png"
    result = run_chromium((site / "report.html").as_uri(), tmp_path, "--virtual-time-budget=15000",
                          "--hide-scrollbars", "--window-size=390,844", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (390, 844)
    keep = os.environ.get("TONGXING_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report-phone.png")
    # what the first screen holds: title, period, funder, budget and the key numbers, before any chart
    html = (site / "report.html").read_text(encoding="utf-8")
    cover = html[html.index('<header class="cover"'):html.index("</header>")]
    assert "资助方" in cover and "项目预算" in cover and cover.count('class="kpi"') >= 4
    assert html.index('class="kpis"') < html.index('class="plot"')
