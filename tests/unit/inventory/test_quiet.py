"""Reading inventories from several threads at once never loses the program's output.

With contextlib.redirect_stdout, two threads' swaps of the process-wide sys.stdout could
interleave and leave it pointing at a discarded buffer: everything printed afterwards (a
benchmark's JSON line, a campaign's progress) vanished.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from lepton_ops.inventory.load import load_fleet
from lepton_ops.inventory.quiet import ansible_silenced

INVENTORY = """\
all:
  hosts:
    node1: {ansible_host: 127.0.1.1, lepton_weight: 100, ansible_connection: local}
    node2: {ansible_host: 127.0.1.2, lepton_weight: 200, ansible_connection: local}
  children:
    aggregator: {hosts: {node2: {}}}
    workers: {hosts: {node1: {}, node2: {}}}
"""


def test_concurrent_inventory_reads_leave_stdout_and_stderr_as_they_were(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    before = sys.stdout, sys.stderr
    errors: list[BaseException] = []

    def read_many() -> None:
        try:
            for _ in range(8):
                assert load_fleet(inventory, limit="node1").names == ["node1"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (sys.stdout, sys.stderr) == before


def test_only_the_silenced_thread_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    silenced, other_printed = threading.Event(), threading.Event()

    def other() -> None:
        silenced.wait(5)
        print("from another thread")
        other_printed.set()

    thread = threading.Thread(target=other)
    thread.start()
    with ansible_silenced():
        print("from the silenced thread")
        silenced.set()
        other_printed.wait(5)
    thread.join()
    print("after")
    assert capsys.readouterr().out == "from another thread\nafter\n"
