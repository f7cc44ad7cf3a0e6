"""Telemetry benchmark: Ansible collection against the HTTP pull, and collection at scale.

Lab part (brings up its own lab - ssh mode as root, local otherwise - in a temporary state
directory, provisions and deploys it; or, with ``--state-dir``, uses a lab that is already
up and deployed there):

- ``ansible_collect_s``: ``lepton_ops.telemetry.collect.collect`` on the five lab nodes
  (the ``lepton.ops.telemetry`` playbook through the gateway, facts parsed and stored);
  the median of ``--collect-repeat`` runs.
- ``pull_s``: one sample of ``telemetry pull`` (every service's /metrics at once over
  HTTP, parsed, mapped and stored): the median of ``--pulls`` samples of one open
  :class:`~lepton_ops.telemetry.pull.Puller`, as a watch loop takes them.
  ``pull_cold_s`` is a whole ``pull()`` call (reading the inventory through Ansible's API,
  the token and the store) for comparison.

Scale part (no lab): inventories of 25, 50, 100 and 200 stand-in hosts, every one
``ansible_connection: local`` on 127.0.0.1 with its own prefix, config and data
directories, all in ``workers`` (the first also the aggregator). Each probes every other
(TCP connect to one listener on 127.0.0.1) and health-checks its services (one small
HTTP server on 127.0.0.1): no traffic leaves 127.0.0.1. ``collect_s[N]`` is the time of
the collect playbook run with ``--forks`` forks (25) plus storing its outcomes, as
``collect()`` does; the playbook is run through the gateway directly because ``collect()``
reads the inventory with ``load_fleet``, which rightly refuses hosts that share an address
and picks its own fork count.

Progress goes to stderr; one JSON line last on stdout:
``{"ansible_collect_s": .., "pull_s": .., "collect_s": {"25": .., ...}, ...context}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from lab_setup import add_lab_options, deployed_lab

from lepton_ops.gateway import PlaybookRun, run_playbook
from lepton_ops.lab import Lab
from lepton_ops.lab.inventory_file import node_python
from lepton_ops.telemetry import HistoryStore, history_path
from lepton_ops.telemetry import collect as collect_module
from lepton_ops.telemetry.pull import open_puller, pull

LOOPBACK = "127.0.0.1"
AGGREGATOR_STANDIN = "standin001"


def log(message: str) -> None:
    sys.stderr.write(f"[telemetry-bench] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- lab part


def lab_part(state: Path, *, collect_repeat: int, pulls: int) -> dict[str, Any]:
    inventory = Lab(state).inventory_path
    collect_times = []
    for attempt in range(collect_repeat):
        result = collect_module.collect(inventory, state)
        collect_times.append(result.duration_s)
        log(
            f"collect #{attempt + 1}: {result.duration_s:.2f} s (playbook), "
            f"{len(result.answered)} answered, {result.record.samples} samples"
        )
        if result.unreachable:
            raise SystemExit(f"[telemetry-bench] unreachable in the lab: {result.unreachable}")

    with open_puller(inventory, state) as puller:
        first = puller.sample()  # connections and imports: not measured
        if first.up != len(first.readings):
            down = [f"{r.target.node}/{r.target.service}: {r.error}" for r in first.readings]
            raise SystemExit(f"[telemetry-bench] services down in the lab: {down}")
        pull_times = []
        for _ in range(pulls):
            time.sleep(0.05)
            sample = puller.sample()
            pull_times.append(sample.seconds)
        log(
            f"pull x{pulls}: median {statistics.median(pull_times) * 1000:.1f} ms, "
            f"max {max(pull_times) * 1000:.1f} ms; {len(first.readings)} services, "
            f"{first.collection.samples} samples each"
        )
    cold_times = []
    for _ in range(3):
        started = time.perf_counter()
        pull(inventory, state)
        cold_times.append(time.perf_counter() - started)
    log(f"pull() cold x3: median {statistics.median(cold_times) * 1000:.0f} ms")
    return {
        "ansible_collect_s": round(statistics.median(collect_times), 3),
        "ansible_collect_runs_s": [round(value, 3) for value in collect_times],
        "pull_s": round(statistics.median(pull_times), 4),
        "pull_max_s": round(max(pull_times), 4),
        "pull_cold_s": round(statistics.median(cold_times), 3),
        "pull_services": len(first.readings),
        "pulls": pulls,
    }


def run_lab_part(args: argparse.Namespace) -> dict[str, Any]:
    with deployed_lab(args, "telemetry-bench") as bench:
        return {"mode": bench.mode} | lab_part(
            bench.state_dir, collect_repeat=args.collect_repeat, pulls=args.pulls
        )


# --------------------------------------------------------------------------- scale part


@contextmanager
def probe_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts every connection and closes it (the probes)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((LOOPBACK, 0))
    server.listen(4096)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.close()

    thread = threading.Thread(target=accept, name="probe-listener", daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok", "service": "stand-in"}'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _HealthServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


@contextmanager
def health_server() -> Iterator[int]:
    """The stand-ins' services: ``/healthz`` answering 200 on 127.0.0.1."""
    server = _HealthServer((LOOPBACK, 0), _Health)
    thread = threading.Thread(target=server.serve_forever, name="health", daemon=True)
    thread.start()
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()


def standin_inventory(root: Path, count: int, probe_port: int, health_port: int) -> Path:
    """``count`` local-connection hosts on 127.0.0.1, each with its own directories."""
    hosts: dict[str, Any] = {}
    for index in range(1, count + 1):
        name = f"standin{index:03d}"
        base = root / "hosts" / name
        for sub in ("opt", "etc", "var"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        hosts[name] = {
            "lepton_prefix": str(base / "opt"),
            "lepton_config_dir": str(base / "etc"),
            "lepton_data_dir": str(base / "var"),
        }
    data = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_host": LOOPBACK,
                "ansible_python_interpreter": node_python(),
                "lepton_lab_mode": "local",
                "lepton_telemetry_probe_port": probe_port,
                "lepton_worker_bind_address": LOOPBACK,
                "lepton_worker_port": health_port,
                "lepton_aggregator_bind_address": LOOPBACK,
                "lepton_aggregator_port": health_port,
            },
            "hosts": hosts,
            "children": {
                "aggregator": {"hosts": {AGGREGATOR_STANDIN: {}}},
                "workers": {"hosts": {name: {} for name in hosts}},
            },
        }
    }
    path = root / f"inventory-{count}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def timed_collection(
    inventory: Path, hosts: tuple[str, ...], state: Path, forks: int, probe_port: int
) -> tuple[float, int]:
    """The collect playbook with ``forks`` forks, its outcomes stored; seconds, hosts ok."""
    request = PlaybookRun(
        playbook=collect_module.PLAYBOOK,
        inventory=inventory,
        hosts=hosts,
        forks=forks,
        timeout_s=collect_module.SSH_CONNECT_TIMEOUT_S,
        extravars={
            "lepton_telemetry_task_timeout": collect_module.TASK_TIMEOUT_S,
            # As collect() does: the node list built once on the controller (the stand-ins
            # share one address, which load_fleet refuses, so it is built here).
            "lepton_telemetry_fleet": [
                {
                    "name": host,
                    "address": LOOPBACK,
                    "port": probe_port,
                    "role": "aggregator" if host == AGGREGATOR_STANDIN else "peer",
                }
                for host in hosts
            ],
        },
    )
    events = collect_module.FactEvents()
    started_at = time.time()
    started = time.monotonic()
    run = run_playbook(request, state, on_event=events.on_event)
    outcomes = [events.outcome(host, run) for host in hosts]
    with HistoryStore(history_path(state)) as store:
        record = store.record_collection(outcomes, "ansible", started_at=started_at)
    elapsed = time.monotonic() - started
    ok = sum(1 for outcome in outcomes if outcome.ok)
    log(
        f"collect {len(hosts)} hosts, forks {forks}: {elapsed:.2f} s "
        f"(playbook {run.duration_s:.2f} s), {ok} ok, {record.samples} samples"
    )
    if ok != len(hosts):
        bad = [(o.node, o.error) for o in outcomes if not o.ok][:2]
        log(f"warning: {len(hosts) - ok} stand-ins failed, e.g. {bad}")
    return elapsed, ok


def run_scale_part(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="lepton-telemetry-scale-"))
    try:
        with probe_listener() as probe_port, health_server() as health_port:
            # One small run first: Ansible's and the module's first start is not measured.
            warm = standin_inventory(root, 2, probe_port, health_port)
            warm_hosts = ("standin001", "standin002")
            timed_collection(warm, warm_hosts, root / "state", args.forks, probe_port)
            times: dict[str, float] = {}
            answered: dict[str, int] = {}
            for count in args.sizes:
                inventory = standin_inventory(root, count, probe_port, health_port)
                hosts = tuple(f"standin{index:03d}" for index in range(1, count + 1))
                runs = [
                    timed_collection(inventory, hosts, root / "state", args.forks, probe_port)
                    for _ in range(args.scale_repeat)
                ]
                times[str(count)] = round(statistics.median(seconds for seconds, _ in runs), 3)
                answered[str(count)] = min(ok for _, ok in runs)
        first, last = str(args.sizes[0]), str(args.sizes[-1])
        return {
            "collect_s": times,
            "collect_hosts_ok": answered,
            "collect_forks": args.forks,
            f"collect_ratio_{last}_over_{first}": round(times[last] / times[first], 2),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_lab_options(parser)
    parser.add_argument("--collect-repeat", type=int, default=3, help="lab collections (median)")
    parser.add_argument("--pulls", type=int, default=20, help="lab pulls (median)")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[25, 50, 100, 200],
        help="stand-in host counts (default 25,50,100,200)",
    )
    parser.add_argument("--forks", type=int, default=25, help="forks of the scale runs")
    parser.add_argument("--scale-repeat", type=int, default=1, help="runs per size (median)")
    parser.add_argument("--skip-lab", action="store_true", help="only the scale part")
    parser.add_argument("--skip-scale", action="store_true", help="only the lab part")
    args = parser.parse_args()

    result: dict[str, Any] = {"ansible_collect_s": None, "pull_s": None, "collect_s": None}
    if not args.skip_lab:
        result.update(run_lab_part(args))
    if not args.skip_scale:
        result.update(run_scale_part(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
