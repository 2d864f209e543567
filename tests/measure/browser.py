"""Headless Chromium for the report tests (Debian package ``chromium``): load a page from a
``file://`` URL, dump its DOM, take a screenshot, keep what Chromium logged to stderr.

How console messages show on stderr (``--enable-logging=stderr --v=0``, Chromium 156): every
``console.*`` call, uncaught exception and Content-Security-Policy violation is one line
``[pid:tid:time:INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)`` -- at INFO whatever the
level, so an error cannot be told from a ``console.log`` by the line alone. ``console_problems``
therefore counts *every* console line: the report runs no script, so any message at all is a
defect. Older Chromiums wrote "Refused to …" for CSP blocks and levelled console lines; those
words are matched too. ``test_report_browser`` proves the check fires on such pages.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
TIMEOUT_S = 90
PROBLEM_WORDS = (":CONSOLE", "Uncaught", "Refused to", "Content Security Policy", "Content-Security-Policy")


@dataclass(frozen=True)
class BrowserRun:
    """What one headless load gave: the serialised DOM, stderr, and the wall time in seconds."""

    dom: str
    stderr: str
    seconds: float


def chromium() -> str:
    """The ``chromium`` executable; fails the test (not a skip) when it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(f"chromium is not installed; install it with: {INSTALL}", pytrace=False)
    return path


def run_chromium(
    url: str, workdir: Path, screenshot: Path | None = None, size: tuple[int, int] = (1280, 2000)
) -> BrowserRun:
    """Load ``url`` once in headless Chromium (own profile in ``workdir``), dump the DOM and,
    if asked, save a ``size`` screenshot to ``screenshot``. Fails the test on a non-zero exit
    or after ``TIMEOUT_S`` seconds."""
    profile = workdir / f"profile-{time.monotonic_ns()}"
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root here; Chromium refuses to start sandboxed as root
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={size[0]},{size[1]}",
        "--dump-dom",
    ]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    start = time.monotonic()
    try:
        done = subprocess.run([*args, url], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"chromium did not finish loading {url} in {TIMEOUT_S} s: {e.stderr!r}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if done.returncode != 0:
        pytest.fail(f"chromium exited {done.returncode} on {url}:\n{done.stderr[-3000:]}")
    return BrowserRun(done.stdout, done.stderr, time.monotonic() - start)


def console_problems(stderr: str) -> list[str]:
    """The stderr lines that are console messages, uncaught errors or blocked loads/scripts."""
    return [line for line in stderr.splitlines() if any(word in line for word in PROBLEM_WORDS)]


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    distinct_rows: int


def read_png(path: Path) -> Png:
    """Check ``path`` is a well-formed 8-bit RGB(A) PNG (signature, chunk CRCs, IHDR, IDAT that
    inflates to exactly one filtered row per pixel row) and count its distinct rows.

    Raises:
        AssertionError: anything malformed.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r} chunk"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert depth == 8 and colour in (2, 6), f"unexpected bit depth {depth} / colour type {colour}"
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + width * (3 if colour == 2 else 4)  # filter byte + pixels
    assert len(raw) == stride * height, "image data does not match the IHDR size"
    rows = {raw[i : i + stride] for i in range(0, len(raw), stride)}
    return Png(width, height, len(rows))
