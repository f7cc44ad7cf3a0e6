"""Event-Driven Ansible in the ssh lab: ansible-rulebook runs the example rulebook with the
``lepton.ops.failure_predictions`` source; a real memory leak on node3 is predicted, the
event fires, the rule runs ``lepton.ops.remediate`` (restart) and the leak is gone before
the node's memory budget is hit.

The model is the lab's starter model (lepton_ops/predict/starter): trained with ``lepton-ops
model train`` on a 40-fault chaos campaign in the lab, the same lab shape this test runs on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lab_tools import Deployed, requires_root

from lepton_ops.chaos import Chaos, FaultKind, FaultSpec
from lepton_ops.credentials.tls import ca_cert_path
from lepton_ops.credentials.tokens import token_path
from lepton_ops.lab import LabMode
from lepton_ops.predict.model_store import install_starter
from lepton_ops.telemetry.collect import collect

REPO = Path(__file__).resolve().parents[2]
RULEBOOK = REPO / "ansible_collections/lepton/ops/extensions/eda/rulebooks"
RULEBOOK_BIN = Path(sys.executable).parent / "ansible-rulebook"
MiB = 1024 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.ssh, requires_root]


@pytest.mark.skipif(shutil.which("java") is None, reason="ansible-rulebook needs a Java runtime")
def test_the_rulebook_remediates_a_predicted_memory_leak(
    deployed: Deployed, tmp_path: Path
) -> None:
    lab = deployed.lab
    if lab.mode is not LabMode.SSH:
        pytest.skip("the leak's memory budget and the lab's faults need the ssh lab")
    install_starter(lab.state_dir)
    for _ in range(2):  # a healthy baseline in the model's window
        collect(lab.inventory, lab.state_dir)
    chaos = Chaos(lab.state_dir)
    (fault,) = chaos.inject({"node3": FaultSpec.of(FaultKind.MEMLEAK, duration_s=240,
                                                   rate_bytes_s=5 * MiB)})  # fmt: skip
    variables = tmp_path / "vars.yml"
    variables.write_text(
        yaml.safe_dump(
            {
                "lepton_state_dir": str(lab.state_dir),
                "lepton_token_file": str(token_path(lab.state_dir)),
                "lepton_ca_file": str(ca_cert_path(lab.state_dir)),
                "lepton_threshold": 0.5,
            }
        )
    )
    env = {
        **os.environ,
        # ansible-rulebook runs ansible-galaxy and ansible-playbook from PATH: the venv's.
        "PATH": f"{RULEBOOK_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(REPO),
    }
    rulebook = subprocess.Popen(
        [str(RULEBOOK_BIN), "--rulebook", str(RULEBOOK / "remediate_predicted_failures.yml"),
         "-i", str(lab.inventory), "--vars", str(variables), "--print-events"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 200
        ended = None
        while time.monotonic() < deadline and ended is None:
            time.sleep(5)
            assert rulebook.poll() is None, rulebook.communicate()[0][-3000:]
            chaos.sync()
            with chaos.store() as store:
                ended = next((f for f in store.faults(active=False) if f.id == fault.id), None)
    finally:
        rulebook.terminate()
        try:
            output = rulebook.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            rulebook.kill()
            output = rulebook.communicate()[0]
        chaos.stop()
    assert ended is not None, f"the leak neither failed nor was remediated:\n{output[-3000:]}"
    assert ended.outcome == "remediated", f"{ended}\n{output[-3000:]}"
    assert ended.failed_at is None
    assert "lepton.ops.remediate" in output or "Restart the lepton services" in output, output[
        -3000:
    ]
    assert deployed.token not in output
