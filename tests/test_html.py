"""The HTML page of a run (`run --html`, `report --html`), checked by parsing it, and once in a
real headless browser when one is installed."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import cli_env, wfrun

from wfrun.reporters.html_page import COLOURS, html_page

Write = Callable[..., Path]

HOSTILE_NAME = '<script>alert(1)</script> & "co"'
WORKFLOW = f"""\
name: '{HOSTILE_NAME}'
parallel: {{defaultMaxConcurrency: 4, resources: {{cpu: 1, disk: 2}}}}
steps:
  - {{id: setup, config: {{command: sleep, args: ['0.1']}}}}
  - id: build
    config: {{command: sleep, args: ['0.2']}}
    dependsOn: [setup]
    parallel: {{resource: cpu}}
  - id: lint
    config: {{command: sh, args: ['-c', 'sleep 0.1; echo "<img src=x onerror=alert(2)>"']}}
    dependsOn: [setup]
    parallel: {{resource: cpu}}
  - id: broken
    config: {{command: sh, args: ['-c', 'echo "</title><b>bold</b>"; exit 4']}}
    dependsOn: [build, lint]
    parallel: {{resource: disk}}
  - {{id: after, config: {{command: 'true'}}, dependsOn: [broken]}}
"""

EXTERNAL_ATTRIBUTES = {"src", "href", "xlink:href", "action", "srcset", "poster", "formaction"}
FETCHING_TAGS = {"script", "img", "link", "iframe", "object", "embed", "audio", "video", "source"}


class Page(HTMLParser):
    """What a test needs to know of the page: bars per step, lanes, tags, texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []
        self.bars: dict[str, list[dict[str, str]]] = {}
        self.waits: dict[str, str] = {}
        self.steps: set[str] = set()
        self.critical: set[str] = set()
        self.lanes: set[str] = set()
        self.heading = ""
        self.svg_heights: dict[str, int] = {}
        self._groups: list[str | None] = []
        self._in: list[str] = []
        self._wait_of: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.attributes += list(a.items())
        self._in.append(tag)
        step = a.get("data-step")
        if tag == "g":
            self._groups.append(step)
            if step is not None:
                self.steps.add(step)
                if "crit" in a.get("class", "").split():
                    self.critical.add(step)
            if "data-pool" in a:
                self.lanes.add(a["data-pool"])
        current = next((g for g in reversed(self._groups) if g is not None), None)
        if tag == "rect" and current is not None:
            classes = a.get("class", "").split()
            if "bar" in classes:
                self.bars.setdefault(current, []).append(a)
            if "wait" in classes:
                self._wait_of = current
        if tag == "svg" and "id" in a:
            self.svg_heights[a["id"]] = int(a["height"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "g" and self._groups:
            self._groups.pop()
        if tag == "rect":
            self._wait_of = None
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "h1":
            self.heading += data
        if self._wait_of is not None and self._in and self._in[-1] == "title":
            self.waits[self._wait_of] = data


GEOMETRY = {"x", "y", "x1", "x2", "y1", "y2", "width", "height"}


def assert_well_formed(page: Page) -> None:
    """Every coordinate is a number: an unquoted value before `/>` would swallow the slash,
    leave the element open and hide everything after it inside it."""
    for name, value in page.attributes:
        if name in GEOMETRY:
            float(value)


def assert_offline(text: str, page: Page) -> None:
    """Nothing on the page can make a browser fetch anything."""
    assert not page.tags & FETCHING_TAGS, page.tags & FETCHING_TAGS
    for name, value in page.attributes:
        assert name not in EXTERNAL_ATTRIBUTES, (name, value)
        assert "://" not in value and not value.startswith("//"), (name, value)
    assert "url(" not in text and "@import" not in text and "@font-face" not in text
    assert "http://" not in text and "https://" not in text


@pytest.fixture
def run_page(write: Write, workdir: Path) -> tuple[Path, Path]:
    """A real run that fails, with a wait on each pool: its page and its run directory."""
    page = workdir / "run.html"
    done = wfrun(
        "run", str(write(WORKFLOW)), "--ui", "quiet", "--log-dir", str(workdir / "logs"),
        "--html", str(page),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # `broken` fails: the page is written anyway
    (run_dir,) = (workdir / "logs").iterdir()
    return page, run_dir


def test_every_step_has_a_bar_and_every_pool_a_lane(run_page: tuple[Path, Path]) -> None:
    path, run_dir = run_page
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    report = json.loads((run_dir / "report.json").read_text())
    ran = {sid for sid, r in report["stepResults"].items() if "startTime" in r}
    assert ran == {"setup", "build", "lint", "broken"}
    assert page.steps == set(report["stepResults"])  # a row per step, `after` (skipped) too
    assert set(page.bars) == ran
    assert page.bars["broken"][0]["data-status"] == "failed"
    assert page.bars["setup"][0]["data-status"] == "succeeded"
    assert page.lanes == {"cpu", "disk"}
    assert page.critical == set(report["parallelStats"]["criticalPath"])
    assert page.critical  # highlighted
    # One of build and lint waited for the pool of one: its wait is drawn and explained. (On a
    # loaded machine the other may wait a little too, for its own start.)
    waited = {sid for sid in page.waits if sid in ("build", "lint")}
    assert any("why: pool cpu 1/1" in page.waits[sid] for sid in waited)
    assert text.count("<line class='cap'") == 2  # each lane's capacity
    assert "position: sticky" in text  # the time axis stays in view
    assert_offline(text, page)
    assert_well_formed(page)


def test_workflow_strings_are_escaped(run_page: tuple[Path, Path]) -> None:
    path, _ = run_page
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert HOSTILE_NAME in page.heading  # shown as written: it round-trips through escaping
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text
    assert "<b>bold</b>" not in text and "<img src=x" not in text
    assert "script" not in page.tags and "b" not in page.tags


def test_hover_texts_say_command_exit_reason_and_log(run_page: tuple[Path, Path]) -> None:
    path, run_dir = run_page
    text = path.read_text(encoding="utf-8")
    assert (
        "command: sh -c &#x27;echo &quot;&lt;/title&gt;&lt;b&gt;bold&lt;/b&gt;&quot;; exit 4"
        in text
    )
    assert "exit 4" in text
    assert "reason: exited with code 4" in text
    assert f"log: {run_dir}/broken.log" in text
    assert "dependency &#x27;broken&#x27; failed" in text  # the skipped step says why


def test_report_html_is_the_page_run_wrote(run_page: tuple[Path, Path], workdir: Path) -> None:
    path, run_dir = run_page
    again = workdir / "again.html"
    done = wfrun("report", str(run_dir), "--html", str(again))
    assert done.returncode == 0, done.stderr
    assert again.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_a_bar_per_attempt(run_page: tuple[Path, Path]) -> None:
    _, run_dir = run_page
    report = json.loads((run_dir / "report.json").read_text())
    broken = report["stepResults"]["broken"]
    start, end = broken["startTime"], broken["endTime"]
    broken["attemptResults"] = [
        {"status": "failed", "exitCode": 4, "startTime": start, "endTime": start + 1,
         "reason": "exited with code 4"},
        {"status": "succeeded", "exitCode": 0, "startTime": end - 1, "endTime": end,
         "reason": None},
    ]  # fmt: skip
    page = Page(html_page(report))
    assert [b["data-status"] for b in page.bars["broken"]] == ["failed", "succeeded"]
    assert len(page.bars["setup"]) == 1


def test_a_thousand_steps_stay_compact(write: Write, workdir: Path) -> None:
    steps = "".join(f"  - {{id: s{i:04d}, config: {{command: 'true'}}}}\n" for i in range(1000))
    path = workdir / "big.html"
    done = wfrun(
        "run", str(write("steps:\n" + steps)), "--dry-run", "--ui", "quiet", "--html", str(path)
    )
    assert done.returncode == 0, done.stderr
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert len(page.bars) == 1000
    assert page.svg_heights["timeline"] <= 15 * 1000 + 100  # compact rows, one per step
    assert len(text) < 2_000_000
    assert_offline(text, page)
    assert_well_formed(page)


def test_run_html_written_when_interrupted(write: Write, workdir: Path) -> None:
    marker = workdir / "out" / "started"
    script = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(30)"
    wf = write(f"steps:\n  - {{id: slow, config: {{command: '{sys.executable}', args: ['-c', "
               f"{json.dumps(script)}]}}}}\n")  # fmt: skip
    page = workdir / "page.html"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", "run", str(wf), "--ui", "plain", "--html", str(page),
         "--log-dir", str(workdir / "logs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    parsed = Page(page.read_text(encoding="utf-8"))
    assert parsed.bars["slow"][0]["data-status"] == "cancelled"


def test_html_path_checked_before_the_run(write: Write, workdir: Path) -> None:
    done = wfrun("run", str(write(WORKFLOW)), "--html", str(workdir / "missing" / "p.html"))
    assert done.returncode == 2
    assert "cannot use --html" in done.stderr


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome", "firefox")


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b is not None), None)


def png_pixels(data: bytes) -> list[tuple[int, int, int]] | None:
    """The RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what browsers write), by
    the PNG specification's own filters; None for any other kind."""
    import struct
    import zlib

    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if header is None or header[2] != 8 or header[3] not in (2, 6) or header[6] != 0:
        return None
    width, height, _, colour = header[:4]
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        previous = line
    return [(r[i], r[i + 1], r[i + 2]) for r in rows for i in range(0, stride, bpp)]


@pytest.mark.skipif(_browser() is None, reason="no headless browser (chromium, chrome, firefox)")
def test_page_renders_in_a_headless_browser(run_page: tuple[Path, Path], workdir: Path) -> None:
    browser = _browser()
    assert browser is not None
    path, _ = run_page
    url = path.resolve().as_uri()
    if "firefox" in browser:
        shot = workdir / "shot.png"
        subprocess.run(
            [browser, "--headless", "--screenshot", str(shot), url],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert shot.exists() and shot.stat().st_size > 1000
        return
    shot = workdir / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1300,800", "--hide-scrollbars", url],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    pixels = png_pixels(shot.read_bytes())
    if pixels is not None:  # the bars were drawn: the status colours are on the screen
        colours = {name: _rgb(COLOURS[name]) for name in ("succeeded", "failed")}
        for name, rgb in colours.items():
            assert sum(p == rgb for p in pixels) > 100, f"no {name} bar on the screen"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    dom = Page(done.stdout)  # the page as the browser built it, after parsing and layout
    assert dom.lanes == {"cpu", "disk"}
    assert {"setup", "build", "lint", "broken"} <= set(dom.bars)
    assert HOSTILE_NAME in dom.heading


def test_a_sequential_run_has_the_timeline_only(write: Write, workdir: Path) -> None:
    path = workdir / "seq.html"
    done = wfrun(
        "run", str(write(WORKFLOW)), "--no-parallel", "--ui", "quiet", "--log-dir",
        str(workdir / "logs"), "--html", str(path),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    page = Page(path.read_text(encoding="utf-8"))
    assert page.lanes == set()
    assert set(page.bars) == {"setup", "build", "lint", "broken"}
