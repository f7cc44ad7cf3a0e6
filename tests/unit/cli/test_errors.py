"""Bad input: one clear line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import one_error_line, run_cli

INVENTORY = """
all:
  children:
    workers:
      hosts:
        a: {ansible_host: 127.0.1.1, lepton_weight: 100}
        b: {ansible_host: 127.0.1.2, lepton_weight: 200}
"""


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("127.0.1.2", "127.0.1.1"), "hosts a and b share the address 127.0.1.1"),
        (
            ("lepton_weight: 200", "lepton_weight: 0"),
            "host b: lepton_weight must be greater than 0",
        ),
        (
            ("lepton_weight: 200", "lepton_weight: -3"),
            "host b: lepton_weight must be greater than 0",
        ),
        (
            ("lepton_weight: 200", "lepton_weight: big"),
            "host b: lepton_weight must be a whole number",
        ),
    ],
)
def test_bad_inventory(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY.replace(*edit))
    result = run_cli("provision", "-i", str(inventory), state_dir=tmp_path / "state")
    assert result.returncode == 2
    assert needle in one_error_line(result)


def test_missing_inventory_file(tmp_path: Path) -> None:
    result = run_cli("provision", "-i", str(tmp_path / "nope.yml"), state_dir=tmp_path)
    assert result.returncode == 2
    assert "nope.yml does not exist" in one_error_line(result)


def test_global_option_before_the_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lepton_ops", "-i", str(tmp_path / "x.yml"), "provision"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"LEPTON_OPS_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "x.yml does not exist" in one_error_line(result)


def test_unknown_limit_host(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    result = run_cli("provision", "-i", str(inventory), "--limit", "zz", state_dir=tmp_path)
    assert result.returncode == 2
    assert "no host or group named zz" in one_error_line(result)


def test_no_inventory_and_no_lab(tmp_path: Path) -> None:
    result = run_cli("provision", state_dir=tmp_path)
    assert result.returncode == 2
    assert "lepton-ops lab up" in one_error_line(result)


def test_unknown_option_is_one_line(tmp_path: Path) -> None:
    result = run_cli("provision", "--frobnicate", state_dir=tmp_path)
    assert result.returncode == 2
    assert "--frobnicate" in one_error_line(result)


def test_bad_option_value_is_one_line(tmp_path: Path) -> None:
    result = run_cli("lab", "up", "--mode", "cloud", state_dir=tmp_path)
    assert result.returncode == 2
    assert "cloud" in one_error_line(result)


def test_version(tmp_path: Path) -> None:
    result = run_cli("--version", state_dir=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("lepton-ops ")
