"""Open a page in headless Chromium (Debian's `chromium`) and watch every request it makes.

Chromium is started with a proxy that is a listener of our own on 127.0.0.1 (and with the
implicit loopback bypass removed): any http(s) or websocket request the page makes reaches
that listener instead of the network, is recorded, and gets no answer. file: and data: URLs
need no network. Chromium's own service traffic (component updates, its clock, account
checks) goes through the same proxy; it is told apart by its hosts (`BROWSER_HOSTS`), which
no page of ours names. `make chromium` (part of `make test`) installs the browser.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from pathlib import Path
from typing import List

from pipelines.report import CHARTS

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-extensions", "--disable-default-apps",
         "--no-default-browser-check", "--disable-domain-reliability", "--no-pings",
         "--disable-client-side-phishing-detection", "--metrics-recording-only",
         "--disable-features=OptimizationHints,Translate,MediaRouter,AutofillServerCommunication"]
# Hosts of Chromium's own background services (seen here despite the flags above).
BROWSER_HOSTS = ("clients2.google.com", "update.googleapis.com", "accounts.google.com",
                 "optimizationguide-pa.googleapis.com", "content-autofill.googleapis.com",
                 "safebrowsingohttpgateway.googleapis.com", "redirector.gvt1.com",
                 "edgedl.me.gvt1.com", "clientservices.googleapis.com")


class RequestTrap:
    """A TCP listener on 127.0.0.1 that records the first line of every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: List[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n")[0].decode(errors="replace")
                except OSError:
                    line = "(connection)"
                if not any(f"{host}/" in line or f"{host}:" in line for host in BROWSER_HOSTS):
                    self.requests.append(line)

    def close(self) -> None:
        self.sock.close()


def chromium(url: str, profile: Path, trap: RequestTrap, *args: str) -> str:
    """Load `url` with JavaScript run to completion; return stdout (e.g. `--dump-dom`)."""
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run `make chromium` (apt-get install)"
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}",
         f"--proxy-server=http://127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
         "--virtual-time-budget=15000", *args, url],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def chart_sections(dom: str) -> dict:
    """The rendered DOM of each chart section of the report, by chart key."""
    out = {}
    for key, _, _ in CHARTS:
        start = dom.index(f'id="chart-{key}"')
        end = dom.find("<section", start + 1)
        out[key] = dom[start:end if end > 0 else len(dom)]
    return out


def assert_report_renders_offline(page: Path, tmp: Path) -> None:
    """Every chart drew marks into its SVG, and the page made no network request."""
    # The markup outside scripts names nothing remote (scripts, styles, fonts, images).
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", page.read_text(), flags=re.S)
    assert "<script>" in page.read_text() and len(markup) < 100_000
    assert not re.search(r"""(src=|href=|url\()["']?(https?:)?//""", markup), "remote resource"
    trap = RequestTrap()
    try:
        # The trap works: a page that fetches an image over http is caught.
        control = tmp / "control.html"
        control.write_text('<img src="http://192.0.2.7/pixel.png">')
        chromium(control.as_uri(), tmp / "chromium-control", trap, "--dump-dom")
        assert any("192.0.2.7" in r for r in trap.requests), trap.requests
        trap.requests.clear()

        dom = chromium(page.as_uri(), tmp / "chromium", trap, "--dump-dom")
        assert trap.requests == [], f"the report made network requests: {trap.requests}"
    finally:
        trap.close()
    for key, section in chart_sections(dom).items():
        assert 'class="main-svg"' in section, f"chart {key} drew no SVG"
        marks = (section.count('class="point"') + section.count("js-line")
                 + section.count('class="hm"'))
        assert marks > 0, f"chart {key} has an empty plot"
