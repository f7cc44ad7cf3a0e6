"""local mode: ``lab down`` stops the services running on the nodes (their supervisors)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lepton_ops.lab import Lab, LabMode
from lepton_ops.services.supervise import Files, is_running


def test_down_stops_local_services(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "state")
    lab.up(LabMode.LOCAL)
    data_dir = lab.node_paths("node2").data_dir
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "lepton_ops.services.supervise",
            "start",
            "--name",
            "lepton-worker",
            "--run-dir",
            str(data_dir),
            "--",
            "sleep",
            "300",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "started" in started.stdout
    files = Files(data_dir, "lepton-worker")
    deadline = time.monotonic() + 10
    while not is_running(files) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_running(files)
    lab.down()
    assert not is_running(files)
