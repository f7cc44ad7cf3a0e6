"""Count the marks plotted in each chart of a report page, in headless Chromium, offline.

    .venv/bin/python tools/report_marks.py REPORT.html

For the page ``lepton-ops report --html`` or ``lepton-ops demo`` wrote. Chromium loads it
with every host name unresolvable (nothing leaves the browser); the page's own check script
sets ``data-marks`` on each chart (the data marks with a non-empty box in a laid-out SVG),
and ``--dump-dom`` prints the DOM after it ran. Prints one JSON line:
``{"charts": [{"chart": "timeline", "node": "node1", "marks": 41}, ...], "ok": true}`` and
exits 1 unless every node's timeline and the load chart have at least one mark.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def charts(dom: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for tag in re.findall(r'<figure\b[^>]*class="chart"[^>]*>', dom):
        kind = re.search(r'data-chart="([^"]*)"', tag)
        node = re.search(r'data-node="([^"]*)"', tag)
        marks = re.search(r'data-marks="(\d+)"', tag)
        found.append(
            {
                "chart": kind.group(1) if kind else "?",
                "node": node.group(1) if node else None,
                "marks": int(marks.group(1)) if marks else 0,
            }
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        parser.error("chromium is not installed (make system-deps, as root)")
    if not args.report.is_file():
        parser.error(f"{args.report} is not a file")
    with tempfile.TemporaryDirectory(prefix="report-marks-") as work:
        done = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={work}/profile", "--dump-dom",
             args.report.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "HOME": work},
        )  # fmt: skip
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
        return 1
    found = charts(done.stdout)
    timelines = [chart for chart in found if chart["chart"] == "timeline"]
    load = [chart for chart in found if chart["chart"] == "load-shares"]
    ok = bool(timelines) and bool(load) and all(c["marks"] for c in timelines + load)
    print(json.dumps({"charts": found, "timelines": len(timelines), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
