# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for the TCP and HTTP probes of the telemetry module, on 127.0.0.1 only."""

from __future__ import annotations

import errno
import http.server
import socket
import threading
import time
from unittest import mock

import pytest

from ansible_collections.lepton.ops.plugins.module_utils import node_probes
from ansible_collections.lepton.ops.tests.unit.plugins.module_utils.fake_node import black_hole

LOCALHOST = '127.0.0.1'


@pytest.fixture
def listening_port():
    """A port on 127.0.0.1 that accepts connections (the kernel completes them; none is read)."""
    with socket.socket() as server:
        server.bind((LOCALHOST, 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 nothing listens on: connects are refused."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port = probe.getsockname()[1]
    return port


@pytest.fixture
def dropped_port():
    with black_hole() as port:
        yield port


class Handler(http.server.BaseHTTPRequestHandler):
    """/healthz: 200; /sick: 503; /slow: 200 after a second; anything else 404."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path == '/slow':
            time.sleep(1.0)
        status = {'/healthz': 200, '/sick': 503, '/slow': 200}.get(self.path, 404)
        body = b'{"status": "ok", "service": "worker"}'
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


@pytest.fixture
def http_service():
    """A tiny HTTP service on 127.0.0.1; yields its base URL."""
    server = http.server.ThreadingHTTPServer((LOCALHOST, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://%s:%d' % (LOCALHOST, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# TCP

def test_probe_a_listening_port(listening_port):
    result, problems = node_probes.probe_tcp(LOCALHOST, listening_port, 3, 1.0)
    assert problems == []
    assert result['attempts'] == 3
    assert result['lost'] == 0
    assert result['reachable'] is True
    assert isinstance(result['latency_ms'], float)
    assert 0.0 <= result['latency_ms'] < 1000.0


def test_probe_a_closed_port(closed_port):
    result, problems = node_probes.probe_tcp(LOCALHOST, closed_port, 3, 1.0)
    assert result == {'attempts': 3, 'lost': 0, 'latency_ms': None, 'reachable': False}
    assert problems == ['Connection refused']  # once, not once per attempt


def test_probe_counts_timeouts_as_lost(dropped_port):
    started = time.monotonic()
    result, problems = node_probes.probe_tcp(LOCALHOST, dropped_port, 2, 0.2)
    assert result == {'attempts': 2, 'lost': 2, 'latency_ms': None, 'reachable': False}
    assert problems == []
    assert time.monotonic() - started < 2.0


def test_probe_counts_an_etimedout_as_lost():
    timed_out = OSError(errno.ETIMEDOUT, 'Connection timed out')
    with mock.patch.object(node_probes.socket.socket, 'connect', side_effect=timed_out):
        result, problems = node_probes.probe_tcp(LOCALHOST, 22, 3, 0.1)
    assert result['lost'] == 3
    assert problems == []


def test_probe_median_of_the_successful_connects(listening_port):
    outcomes = iter([None, socket.timeout('timed out'), None, None])
    ticks = iter([0.0, 0.010, 1.0, 2.0, 2.002, 3.0, 3.030])

    def connect(self, address):  # pylint: disable=unused-argument
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    with mock.patch.object(node_probes.socket.socket, 'connect', connect), \
            mock.patch.object(node_probes.time, 'perf_counter', lambda: next(ticks)):
        result, problems = node_probes.probe_tcp(LOCALHOST, listening_port, 4, 1.0)
    assert problems == []
    assert result['lost'] == 1
    assert result['latency_ms'] == 10.0  # median of 10, 2 and 30 ms
    assert result['reachable'] is True


def test_probe_an_unresolvable_name():
    with mock.patch.object(node_probes.socket, 'getaddrinfo',
                           side_effect=socket.gaierror(-2, 'Name or service not known')):
        result, problems = node_probes.probe_tcp('node9.invalid', 22, 3, 1.0)
    assert result == {'attempts': 3, 'lost': 0, 'latency_ms': None, 'reachable': False}
    assert problems == ['cannot resolve node9.invalid: Name or service not known']


# HTTP

def test_health_of_a_healthy_service(http_service):
    result, problem = node_probes.check_health(http_service + '/healthz', 2.0)
    assert problem is None
    assert result['healthy'] is True
    assert result['status_code'] == 200
    assert isinstance(result['latency_ms'], float)


def test_health_of_a_sick_service(http_service):
    result, problem = node_probes.check_health(http_service + '/sick', 2.0)
    assert problem is None  # an answer was read: its status says the rest
    assert result['healthy'] is False
    assert result['status_code'] == 503
    assert result['latency_ms'] is not None


def test_health_of_a_service_that_is_down(closed_port):
    url = 'http://%s:%d/healthz' % (LOCALHOST, closed_port)
    result, problem = node_probes.check_health(url, 1.0)
    assert result == {'healthy': False, 'status_code': None, 'latency_ms': None}
    assert problem == 'Connection refused'


def test_health_of_a_slow_service(http_service):
    result, problem = node_probes.check_health(http_service + '/slow', 0.2)
    assert result == {'healthy': False, 'status_code': None, 'latency_ms': None}
    assert problem == 'timed out'


def test_health_ignores_proxies_of_the_environment(http_service, closed_port, monkeypatch):
    proxy = 'http://%s:%d' % (LOCALHOST, closed_port)
    for name in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv('no_proxy', raising=False)
    monkeypatch.delenv('NO_PROXY', raising=False)
    result, problem = node_probes.check_health(http_service + '/healthz', 2.0)
    assert problem is None
    assert result['status_code'] == 200


# Background

def test_background_returns_results_in_order():
    def fail():
        raise RuntimeError('boom')

    results = node_probes.Background([lambda: 1, fail, lambda: 'three']).wait(5.0)
    assert results[0] == (True, 1)
    assert results[1][0] is True and isinstance(results[1][1], RuntimeError)
    assert results[2] == (True, 'three')


def test_background_gives_up_on_calls_that_hang():
    release = threading.Event()
    try:
        started = time.monotonic()
        results = node_probes.Background([release.wait, lambda: 2]).wait(0.3)
        assert time.monotonic() - started < 2.0
        assert results == [(False, None), (True, 2)]
    finally:
        release.set()


def test_background_of_nothing():
    assert node_probes.Background([]).wait(1.0) == []


def test_targets_are_probed_at_the_same_time(dropped_port):
    """Four dropped targets with three attempts of 0.2 s take 0.6 s, not 2.4 s."""
    started = time.monotonic()
    results = node_probes.Background([
        (lambda: node_probes.probe_tcp(LOCALHOST, dropped_port, 3, 0.2)) for dummy in range(4)
    ]).wait(5.0)
    elapsed = time.monotonic() - started
    assert [done for done, dummy in results] == [True] * 4
    assert all(value[0]['lost'] == 3 for dummy, value in results)
    assert elapsed < 1.8


def test_describe():
    assert node_probes.describe(socket.timeout('timed out')) == 'timed out'
    refused = ConnectionRefusedError(111, 'Connection refused')
    assert node_probes.describe(refused) == 'Connection refused'
    assert node_probes.describe(ValueError('bad\nsecond line')) == 'bad'
    assert node_probes.describe(ValueError()) == 'ValueError'
