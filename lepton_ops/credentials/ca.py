"""The fleet's CA, made once on the controller, and a certificate per node (``cryptography``).

Files: see :mod:`lepton_ops.credentials.tls`. A node's certificate names the node's
address (a SAN IP address, or a DNS name when the address is not an IP) and its inventory
name (a SAN DNS name). :func:`ensure_node_cert` issues it on first use and again only when
it no longer fits: its names changed (the node's address moved), it was not signed by the
CA, or it expires within :data:`RENEW_BEFORE`. Otherwise the files are left untouched, so
a second deploy changes nothing on the nodes.

Keys never leave a file: deploy hands Ansible the *paths*
(:func:`lepton_ops.deploy.deploy.tls_extravars`), and the roles copy the files with
``no_log``. Errors name files, never their content.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lepton_ops.credentials.tls import NodeCert, ca_cert_path, ca_key_path, node_cert_paths
from lepton_ops.credentials.tokens import check_private, write_private
from lepton_ops.errors import BadInput

CA_DAYS = 3650
NODE_DAYS = 397
#: A node certificate that expires within this is issued again.
RENEW_BEFORE = dt.timedelta(days=30)
CA_NAME = "lepton-ops fleet CA"


# ------------------------------------------------------------------------------- the CA


@dataclass(frozen=True)
class Authority:
    """The CA, loaded: its certificate and key (the key stays in this process)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def ensure_ca(state_dir: Path, now: dt.datetime | None = None) -> Path:
    """The CA certificate's path, making the CA on first use (reused afterwards)."""
    load_ca(state_dir, now, create=True)
    return ca_cert_path(state_dir)


def load_ca(state_dir: Path, now: dt.datetime | None = None, *, create: bool = False) -> Authority:
    """The CA; with ``create``, made first when there is none. BadInput if its files are
    not private, do not parse, or do not belong together."""
    key_path, cert_path = ca_key_path(state_dir), ca_cert_path(state_dir)
    if create and not key_path.exists():
        _private_dir(key_path.parent)
        write_private(key_path, _key_pem(ec.generate_private_key(ec.SECP256R1())), replace=False)
    key = _load_key(key_path, "CA key")
    if create and not cert_path.exists():
        write_private(cert_path, _pem(_ca_certificate(key, _now(now))), replace=False)
    cert = _load_cert(cert_path, "CA certificate")
    if cert.public_key() != key.public_key():
        raise BadInput(
            f"CA certificate {cert_path} does not match the key {key_path}: remove both to "
            f"make a new CA (then deploy again)"
        )
    return Authority(cert, key)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


# ------------------------------------------------------------------------- node certificates


def ensure_node_cert(
    state_dir: Path, name: str, address: str, now: dt.datetime | None = None
) -> NodeCert:
    """The node's certificate and key files, issued when there are none or they no longer
    fit (see the module's doc); left untouched otherwise."""
    authority = load_ca(state_dir, now, create=True)
    paths = node_cert_paths(state_dir, name)
    moment = _now(now)
    if paths.cert.exists() and paths.key.exists():
        check_private(paths.key, "node key")
        if not needs_renewal(paths, authority.cert, name, address, moment):
            return paths
    _private_dir(paths.key.parent)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _node_certificate(authority, key, name, address, moment)
    write_private(paths.key, _key_pem(key), replace=True)
    write_private(paths.cert, _pem(cert), replace=True)
    return paths


def needs_renewal(
    paths: NodeCert, ca: x509.Certificate, name: str, address: str, now: dt.datetime
) -> bool:
    """Whether the node's certificate must be issued again (a reason not to trust it, its
    names changed, or it expires within :data:`RENEW_BEFORE`)."""
    try:
        cert = _load_cert(paths.cert, "node certificate")
        key = _load_key(paths.key, "node key")
    except BadInput:
        return True
    if cert.public_key() != key.public_key() or not signed_by(cert, ca):
        return True
    if _subject_names(cert) != _wanted_names(name, address):
        return True
    return cert.not_valid_after_utc - now < RENEW_BEFORE


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` issued ``cert`` (its signature checks out with the CA's key)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _node_certificate(
    authority: Authority,
    key: ec.EllipticCurvePrivateKey,
    name: str,
    address: str,
    now: dt.datetime,
) -> x509.Certificate:
    names = _wanted_names(name, address)
    ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=NODE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sorted(names, key=str)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(authority.key, hashes.SHA256())
    )


def _wanted_names(name: str, address: str) -> frozenset[x509.GeneralName]:
    names: set[x509.GeneralName] = {x509.DNSName(name)}
    try:
        names.add(x509.IPAddress(ipaddress.ip_address(address)))
    except ValueError:
        names.add(x509.DNSName(address))
    return frozenset(names)


def _subject_names(cert: x509.Certificate) -> frozenset[x509.GeneralName]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(san)


# --------------------------------------------------------------------------------- files


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_cert(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{what} {path} cannot be read: {exc}") from None


def _load_key(path: Path, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        check_private(path, what)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except (OSError, ValueError, TypeError) as exc:
        raise BadInput(f"{what} {path} cannot be read: {type(exc).__name__}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInput(f"{what} {path} is not an EC key")
    return key
