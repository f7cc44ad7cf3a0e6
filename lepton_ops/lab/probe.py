"""Is a node's sshd answering? A TCP connect that reads an ``SSH-2.0`` banner."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from lepton_ops.errors import OperationFailed
from lepton_ops.lab.topology import lab_address

BANNER = b"SSH-2.0"
PROBE_TIMEOUT = 1.0


def ssh_banner_reachable(address: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if ``address:port`` accepts a connection and sends an SSH-2.0 banner in time."""
    target = str(lab_address(address))  # never probe outside the lab network
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((target, port), timeout=timeout) as conn:
            received = b""
            while BANNER not in received and len(received) < 4096:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                conn.settimeout(left)
                chunk = conn.recv(256)
                if not chunk:
                    return False
                received += chunk
            return BANNER in received
    except OSError:
        return False


def probe_all(addresses: Iterable[str], port: int, timeout: float = PROBE_TIMEOUT) -> list[bool]:
    """:func:`ssh_banner_reachable` for every address, in parallel, in the given order."""
    targets = list(addresses)
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return list(pool.map(lambda address: ssh_banner_reachable(address, port, timeout), targets))


def port_is_free(address: str, port: int) -> bool:
    """True if nothing listens on ``address:port`` (nor on the wildcard address there)."""
    target = str(lab_address(address))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((target, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise OperationFailed(
                f"cannot bind {target}:{port} to check that it is free: {exc}"
            ) from None
    return True
