"""The report's HTML page in a real browser: headless Chromium draws every chart, offline.

A unit test although it starts a browser: it takes a few seconds and needs no lab.

Chromium loads the page from a file with the network shut: the flags turn off its
background requests, ``--host-resolver-rules`` fails every host name inside the browser
(nothing is resolved, so nothing is sent), and the page's own Content-Security-Policy
forbids fetching anything. The page's check script marks each chart ``data-drawn="yes"``
once its SVG has a size and a data mark with a non-empty bounding box; ``--dump-dom``
prints the DOM after that script ran. The browser's net log is read back to show that no
host name was resolved and no byte was sent.

Chromium is a system package (``make system-deps`` installs it as root). The test skips
only when it is missing and cannot be installed here (not root); as root (CI) a missing
browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_support import full_report

from lepton_ops.report.html import page

BROWSERS = ("chromium", "chromium-browser")
TIMEOUT_S = 90
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # no byte leaves the browser: every host name fails to resolve, inside the browser
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
#: Net-log events that mean a name was resolved or data was sent.
NETWORK_EVENTS = frozenset(
    {
        "HOST_RESOLVER_DNS_TASK",
        "HOST_RESOLVER_SYSTEM_TASK",
        "TCP_CONNECT_ATTEMPT",
        "SSL_CONNECT",
        "SOCKET_BYTES_SENT",
        "UDP_BYTES_SENT",
    }
)


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0:
        pytest.skip(
            "chromium is not installed and only root can install it: "
            "run 'make system-deps' as root (apt-get install chromium)"
        )
    pytest.fail("chromium is not installed: run 'make system-deps' (apt-get install chromium)")


def dump_dom(path: Path, work: Path) -> tuple[str, list[str]]:
    """The page's DOM after Chromium loaded it, and the net-log events of the run."""
    net_log = work / "net-log.json"
    done = subprocess.run(
        [
            browser(),
            *FLAGS,
            f"--user-data-dir={work / 'profile'}",
            f"--log-net-log={net_log}",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        env={**os.environ, "HOME": str(work)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = json.loads(net_log.read_text(encoding="utf-8"))
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    return done.stdout, [names.get(event["type"], "?") for event in log["events"]]


def chart_states(dom: str) -> list[tuple[str, str]]:
    """``(data-chart, data-drawn)`` of every chart container in the DOM."""
    found = []
    for tag in re.findall(r'<figure\b[^>]*class="chart"[^>]*>', dom):
        kind = re.search(r'data-chart="([^"]*)"', tag)
        drawn = re.search(r'data-drawn="([^"]*)"', tag)
        found.append((kind.group(1) if kind else "?", drawn.group(1) if drawn else "?"))
    return found


def chart_marks(dom: str) -> list[tuple[str, str, int]]:
    """``(data-chart, data-node, data-marks)`` of every chart: the marks the browser drew
    inside it (data marks with a non-empty box in a laid-out SVG)."""
    found = []
    for tag in re.findall(r'<figure\b[^>]*class="chart"[^>]*>', dom):
        kind = re.search(r'data-chart="([^"]*)"', tag)
        node = re.search(r'data-node="([^"]*)"', tag)
        marks = re.search(r'data-marks="(\d+)"', tag)
        found.append(
            (
                kind.group(1) if kind else "?",
                node.group(1) if node else "",
                int(marks.group(1)) if marks else -1,
            )
        )
    return found


def test_chromium_draws_every_chart_of_the_report_offline(tmp_path: Path) -> None:
    html = page(full_report(tmp_path / "state"))
    # a chart that shows nothing, to prove the page's check is not vacuous
    empty = (
        '<figure class="chart" data-chart="empty" data-drawn="no">'
        '<svg viewBox="0 0 10 10" width="10" height="10"><line class="axis" x1="0" x2="10" '
        'y1="5" y2="5"/></svg></figure>'
    )
    html = html.replace("<script>", empty + "<script>", 1)
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")

    dom, events = dump_dom(path, tmp_path)

    states = chart_states(dom)
    assert states == [
        ("timeline", "yes"),
        ("timeline", "yes"),
        ("timeline", "yes"),
        ("load-shares", "yes"),
        ("makespan", "yes"),
        ("empty", "no"),
    ], states
    body = re.search(r"<body\b[^>]*>", dom)
    assert body is not None
    assert 'data-charts-drawn="5"' in body.group(0) and 'data-charts-total="6"' in body.group(0)
    sent = sorted({name for name in events if name in NETWORK_EVENTS})
    assert sent == [], f"chromium used the network: {sent}"
    # count what was plotted inside each chart (the synthetic store: report_support)
    marks = {(kind, node): count for kind, node, count in chart_marks(dom)}
    # each node's timeline: its memory, disk and health lines at least, plus node2's two
    # failure episodes, fault band and incident ticks and two remediation markers
    assert all(marks["timeline", node] >= 3 for node in ("node1", "node2", "node3")), marks
    assert marks["timeline", "node2"] >= marks["timeline", "node1"] + 6, marks
    # load shares: per node (3), its L_i and its executed share in each of the 3 jobs
    assert marks["load-shares", ""] == 3 * (1 + 3), marks
    assert marks["makespan", ""] == 3 * 2, marks
    assert marks["empty", ""] == 0
