# Copyright: (c) 2025, lepton-ops maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Network probes run from a node: TCP connect latency and HTTP health checks.

Standard library only, so that modules running on a node that is not provisioned yet (or is half
broken) can use them. ``Background`` runs probes in threads of their own, so that probing many
targets, some of which drop packets, takes about as long as probing the slowest one.
"""

from __future__ import annotations

import errno
import socket
import ssl
import statistics
import threading
import time
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.request import HTTPSHandler, ProxyHandler, Request, build_opener

USER_AGENT = 'lepton.ops'

# A health check reads at most this much of the response body.
MAX_BODY_BYTES = 64 * 1024


def describe(error):
    """A short, one-line description of an exception."""
    if isinstance(error, URLError) and not isinstance(error, HTTPError):
        error = error.reason
    if isinstance(error, socket.timeout):
        return 'timed out'
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def is_timeout(error):
    return isinstance(error, socket.timeout) or (isinstance(error, OSError)
                                                 and error.errno == errno.ETIMEDOUT)


def probe_tcp(address, port, attempts, timeout):
    """Time ``attempts`` TCP connects to ``address:port``, one after the other.

    Returns ``(result, problems)``: ``result`` has ``attempts``, ``lost`` (connects that timed
    out after ``timeout`` seconds), ``latency_ms`` (median of the successful connects, None when
    none succeeded) and ``reachable`` (whether any connect succeeded); ``problems`` lists the
    distinct reasons of the other failures (name resolution, connection refused...). The name is
    resolved once, and the resolution is not part of the timing.
    """
    result = {'attempts': attempts, 'lost': 0, 'latency_ms': None, 'reachable': False}
    problems = []
    try:
        family, kind, protocol, dummy, sockaddr = socket.getaddrinfo(
            address, port, 0, socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError, IndexError) as error:
        return result, ['cannot resolve %s: %s' % (address, describe(error))]
    times = []
    for _attempt in range(attempts):
        try:
            with socket.socket(family, kind, protocol) as sock:
                sock.settimeout(timeout)
                started = time.perf_counter()
                sock.connect(sockaddr)
                times.append((time.perf_counter() - started) * 1000.0)
        except OSError as error:
            if is_timeout(error):
                result['lost'] += 1
                continue
            message = describe(error)
            if message not in problems:
                problems.append(message)
    if times:
        result['latency_ms'] = round(statistics.median(times), 3)
        result['reachable'] = True
    return result, problems


def direct_opener(ca_file=None):
    """A urllib opener that uses no proxy; with ``ca_file``, https certificates must be signed
    by that CA (the fleet's) and name the host. Without it, the system's CAs."""
    handlers = [ProxyHandler({})]
    if ca_file:
        handlers.append(HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
    return build_opener(*handlers)


def check_health(url, timeout, ca_file=None):
    """GET ``url`` (an HTTP health endpoint such as ``/healthz``), at most ``timeout`` s per step.

    Returns ``(result, problem)``: ``result`` has ``healthy`` (a 2xx answer), ``status_code`` and
    ``latency_ms`` (until the body was read; both None when no HTTP answer came), ``problem`` says
    why no answer came (None when one did, whatever its status). Proxies from the environment
    are not used: the services are reached directly. An https URL's certificate is verified
    against ``ca_file`` (the fleet's CA) when given.
    """
    opener = direct_opener(ca_file)
    request = Request(url, headers={'User-Agent': USER_AGENT, 'Accept': 'application/json'})
    status = None
    problem = None
    started = time.perf_counter()
    try:
        response = opener.open(request, timeout=timeout)
        try:
            response.read(MAX_BODY_BYTES)
            status = response.getcode()
        finally:
            response.close()
    except HTTPError as error:
        status = error.code
        error.close()
    except (URLError, HTTPException, OSError, ValueError) as error:
        problem = describe(error)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    result = {
        'healthy': status is not None and 200 <= status < 300,
        'status_code': status,
        'latency_ms': round(elapsed_ms, 3) if status is not None else None,
    }
    return result, problem


class Background:
    """Calls each of ``calls`` (callables without arguments) in a daemon thread of its own."""

    def __init__(self, calls):
        self._results = [None] * len(calls)
        self._done = [False] * len(calls)
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run, args=(index, call), daemon=True,
                             name='lepton-probe-%d' % index)
            for index, call in enumerate(calls)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, index, call):
        try:
            self._results[index] = call()
        except Exception as error:  # reported to the caller, who decides
            self._results[index] = error
        self._done[index] = True

    def wait(self, timeout):
        """Wait for the calls, until ``timeout`` seconds after they were started.

        Returns ``[(done, value)]`` in the order of the calls: ``value`` is what the call
        returned, or the exception it raised; ``done`` is False (and ``value`` None) for calls
        still running, whose threads are abandoned.
        """
        deadline = self._started + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [(done, self._results[index] if done else None)
                for index, done in enumerate(list(self._done))]
