"""The fleet's TLS on the wire: where the CA and node certificates live, and how clients
trust them (the standard library only: the nodes import this; the CA itself is made on the
controller by :mod:`lepton_ops.credentials.ca`).

Layout, under ``<state_dir>/secrets/tls/`` (directories 0700, every file 0600)::

    ca.key  ca.crt               the CA (ECDSA P-256, 10 years)
    nodes/<name>.key <name>.crt  each node's key and certificate, signed by the CA

Clients verify a service's certificate against ``ca.crt`` (:func:`client_context`), with
hostname checking: a plain-http URL is used only when the inventory sets
``lepton_insecure_http`` (the explicit lab option) or the caller gives one explicitly.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from lepton_ops.credentials.tokens import secrets_dir
from lepton_ops.errors import BadInput


def tls_dir(state_dir: Path) -> Path:
    return secrets_dir(state_dir) / "tls"


def ca_cert_path(state_dir: Path) -> Path:
    """The CA certificate every client verifies against."""
    return tls_dir(state_dir) / "ca.crt"


def ca_key_path(state_dir: Path) -> Path:
    return tls_dir(state_dir) / "ca.key"


@dataclass(frozen=True)
class NodeCert:
    """A node's certificate and key files on the controller."""

    name: str
    cert: Path
    key: Path


def node_cert_paths(state_dir: Path, name: str) -> NodeCert:
    if not name or "/" in name or name.startswith("."):
        raise BadInput(f"host name {name!r} cannot name a certificate file")
    where = tls_dir(state_dir) / "nodes"
    return NodeCert(name, where / f"{name}.crt", where / f"{name}.key")


# ------------------------------------------------------------------------------- clients


def client_context(ca_file: Path) -> ssl.SSLContext:
    """An SSL context that trusts only the fleet's CA, with hostname checking (TLS 1.2+).

    Build it once per client and keep it: loading the CA is the expensive part, and one
    context lets connections be kept alive and sessions resumed."""
    if not ca_file.is_file():
        raise BadInput(f"no CA certificate at {ca_file}: deploy first (lepton-ops deploy)")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def fleet_ssl_context(state_dir: Path) -> ssl.SSLContext:
    """A client context for the fleet deployed from ``state_dir`` (BadInput if no CA yet)."""
    return client_context(ca_cert_path(state_dir))


def url_verify(state_dir: Path, url: str) -> ssl.SSLContext | bool:
    """What an httpx client reaching ``url`` verifies with: the fleet's CA for https (BadInput
    if there is none yet), nothing to verify for an explicit http URL."""
    if url.lower().startswith("https://"):
        return fleet_ssl_context(state_dir)
    return True
