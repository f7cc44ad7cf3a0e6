"""The fleet's CA and node certificates (lepton_ops.credentials.tls), and clients over TLS:
modes, names, verification against the CA, renewal, and no fall-back to plain http."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from cryptography import x509

from lepton_ops.credentials import ca, tls
from lepton_ops.credentials.tokens import ensure_tokens
from lepton_ops.deploy.deploy import tls_extravars, token_extravars
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.inventory import Fleet, Node
from lepton_ops.jobs.client import AggregatorClient, aggregator_url
from lepton_ops.telemetry.pull import service_targets, targets_verify

ADDRESS = "127.0.0.1"


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_ca_and_node_keys_are_private(tmp_path: Path) -> None:
    paths = ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")
    for private in (tls.ca_key_path(tmp_path), paths.key, paths.cert, tls.ca_cert_path(tmp_path)):
        assert mode(private) == 0o600, private
    assert mode(tls.tls_dir(tmp_path)) == 0o700
    assert mode(paths.key.parent) == 0o700


def test_a_node_certificate_names_its_address_and_host_and_is_signed_by_the_ca(
    tmp_path: Path,
) -> None:
    paths = ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")
    cert, authority = load(paths.cert), load(tls.ca_cert_path(tmp_path))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.1.21")]
    assert san.get_values_for_type(x509.DNSName) == ["node1"]
    assert ca.signed_by(cert, authority)
    assert authority.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_host_name_address_is_a_dns_name(tmp_path: Path) -> None:
    cert = load(ca.ensure_node_cert(tmp_path, "node1", "node1.example").cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["node1", "node1.example"]
    assert san.get_values_for_type(x509.IPAddress) == []


def test_the_ca_is_made_once(tmp_path: Path) -> None:
    first = ca.ensure_ca(tmp_path).read_bytes()
    key = tls.ca_key_path(tmp_path).read_bytes()
    assert ca.ensure_ca(tmp_path).read_bytes() == first
    assert tls.ca_key_path(tmp_path).read_bytes() == key


def test_issuing_again_changes_nothing_while_the_certificate_fits(tmp_path: Path) -> None:
    paths = ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")
    before = (paths.cert.read_bytes(), paths.key.read_bytes())
    ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")
    assert (paths.cert.read_bytes(), paths.key.read_bytes()) == before


def test_a_moved_address_renews_the_certificate(tmp_path: Path) -> None:
    paths = ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")
    before = paths.key.read_bytes()
    ca.ensure_node_cert(tmp_path, "node1", "127.0.1.22")
    san = load(paths.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.1.22")]
    assert paths.key.read_bytes() != before


def test_a_certificate_near_expiry_is_renewed(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    paths = ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21", now=now)
    expires = load(paths.cert).not_valid_after_utc
    assert not ca.needs_renewal(paths, load(tls.ca_cert_path(tmp_path)), "node1", "127.0.1.21",
                                 expires - ca.RENEW_BEFORE - dt.timedelta(days=1))  # fmt: skip
    later = expires - ca.RENEW_BEFORE + dt.timedelta(days=1)
    ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21", now=later)
    assert load(paths.cert).not_valid_after_utc > expires


def test_a_certificate_from_another_ca_is_issued_again(tmp_path: Path) -> None:
    other = tmp_path / "other"
    foreign = ca.ensure_node_cert(other, "node1", "127.0.1.21")
    paths = tls.node_cert_paths(tmp_path, "node1")
    ca.ensure_ca(tmp_path)
    paths.cert.parent.mkdir(parents=True, mode=0o700)
    paths.cert.write_bytes(foreign.cert.read_bytes())
    paths.key.write_bytes(foreign.key.read_bytes())
    os.chmod(paths.key, 0o600)
    assert not ca.signed_by(load(paths.cert), load(tls.ca_cert_path(tmp_path)))
    ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")
    assert ca.signed_by(load(paths.cert), load(tls.ca_cert_path(tmp_path)))


def test_a_ca_key_others_can_read_is_refused(tmp_path: Path) -> None:
    ca.ensure_ca(tmp_path)
    os.chmod(tls.ca_key_path(tmp_path), 0o644)
    with pytest.raises(BadInput, match="chmod 600"):
        ca.ensure_node_cert(tmp_path, "node1", "127.0.1.21")


def test_a_bad_host_name_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot name a certificate file"):
        tls.node_cert_paths(tmp_path, "../node1")


def test_no_ca_yet_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="deploy first"):
        tls.fleet_ssl_context(tmp_path)


# ----------------------------------------------------------------------- served over TLS


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])  # type: ignore[operator]
    return [b'{"jobs": []}']


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A WSGI server on 127.0.0.1 with node1's certificate from the CA in ``tmp_path``."""
    paths = ca.ensure_node_cert(tmp_path, "node1", ADDRESS)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths.cert, paths.key)
    server = make_server(ADDRESS, 0, hello, WSGIServer, handler_class=QuietHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_verifies_the_service_against_the_ca(served: tuple[Path, int]) -> None:
    state, port = served
    answer = httpx.get(f"https://{ADDRESS}:{port}/", verify=tls.fleet_ssl_context(state))
    assert answer.status_code == 200


def test_a_client_refuses_a_service_with_a_certificate_from_another_ca(
    served: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, port = served
    other = tmp_path_factory.mktemp("other")
    ca.ensure_ca(other)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://{ADDRESS}:{port}/", verify=tls.fleet_ssl_context(other))
    # Nor does the system's trust store know the fleet's CA.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://{ADDRESS}:{port}/")


def test_a_certificate_for_another_address_is_refused(served: tuple[Path, int]) -> None:
    state, port = served
    context = tls.fleet_ssl_context(state)
    with (
        socket.create_connection((ADDRESS, port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
    ):
        context.wrap_socket(raw, server_hostname="127.0.1.99")


def test_plain_http_to_the_https_port_gets_no_answer(served: tuple[Path, int]) -> None:
    _, port = served
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{ADDRESS}:{port}/healthz", timeout=2)


def test_the_job_client_does_not_fall_back_to_http(served: tuple[Path, int]) -> None:
    state, port = served
    url = f"https://{ADDRESS}:{port}"
    with AggregatorClient(url, "t", verify=tls.fleet_ssl_context(state)) as client:
        assert client.list() == []
    with AggregatorClient(url, "t") as client, pytest.raises(OperationFailed) as refused:
        client.list()  # the system's CAs: refused, and no second try over http
    assert "ConnectError" in str(refused.value)
    assert client.base_url.startswith("https://")


# ------------------------------------------------------------------------- inventory, deploy


def fleet(tmp_path: Path, **extra: object) -> Fleet:
    nodes = tuple(
        Node(name, address, 1, ("aggregator", "workers") if name == "node2" else ("workers",),
             vars=dict(extra))
        for name, address in (("node1", "127.0.1.21"), ("node2", "127.0.1.22"))
    )  # fmt: skip
    return Fleet(tmp_path / "inventory.yml", nodes)


def test_clients_use_https_unless_the_inventory_says_insecure_http(tmp_path: Path) -> None:
    assert {t.url.split(":")[0] for t in service_targets(fleet(tmp_path))} == {"https"}
    insecure = service_targets(fleet(tmp_path, lepton_insecure_http=True))
    assert {t.url.split(":")[0] for t in insecure} == {"http"}
    assert targets_verify(tmp_path, insecure) is True
    with pytest.raises(BadInput, match="deploy first"):
        targets_verify(tmp_path, service_targets(fleet(tmp_path)))
    with pytest.raises(BadInput, match="must be true or false"):
        _ = fleet(tmp_path, lepton_insecure_http="maybe").nodes[0].insecure_http


def test_the_aggregator_url_is_https(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    node1: {ansible_host: 127.0.1.21}\n"
        "  children:\n    aggregator: {hosts: {node1: {}}}\n    workers: {hosts: {node1: {}}}\n",
        encoding="utf-8",
    )
    assert aggregator_url(inventory) == "https://127.0.1.21:8700"
    text = inventory.read_text(encoding="utf-8").replace(
        "ansible_host: 127.0.1.21", "ansible_host: 127.0.1.21, lepton_insecure_http: true"
    )
    inventory.write_text(text, encoding="utf-8")
    assert aggregator_url(inventory) == "http://127.0.1.21:8700"


def test_deploy_hands_ansible_paths_never_keys_or_tokens(tmp_path: Path) -> None:
    extravars = token_extravars(ensure_tokens(tmp_path)) | tls_extravars(tmp_path, fleet(tmp_path))
    values = list(extravars.values())
    assert all(Path(value).is_absolute() for value in values)
    secrets = [tls.ca_key_path(tmp_path).read_text(encoding="utf-8")]
    for name in ("node1", "node2"):
        paths = tls.node_cert_paths(tmp_path, name)
        assert paths.cert.parent == Path(extravars["lepton_tls_node_dir"])
        secrets.append(paths.key.read_text(encoding="utf-8"))
    text = repr(extravars)
    for secret in secrets:
        assert secret not in text
        assert "PRIVATE KEY" not in text
    assert tls_extravars(tmp_path, fleet(tmp_path, lepton_insecure_http=True)) == {}


def test_errors_never_carry_key_material(tmp_path: Path) -> None:
    ca.ensure_ca(tmp_path)
    key_path = tls.ca_key_path(tmp_path)
    key = key_path.read_text(encoding="utf-8")
    key_path.write_text(key.replace("A", "!", 3), encoding="utf-8")
    with pytest.raises(BadInput) as refused:
        ca.load_ca(tmp_path)
    assert "PRIVATE" not in str(refused.value)
    assert key.splitlines()[1][:20] not in str(refused.value)


def test_the_services_do_not_need_cryptography() -> None:
    """The nodes' virtualenvs hold the ``node`` extra only: the apps (and their supervisor)
    must import without the controller's own dependencies."""
    controller_only = ["cryptography", "platformdirs", "typer", "ansible", "ansible_runner"]
    code = (
        "import sys; import lepton_ops.services.aggregator, lepton_ops.services.worker, "
        "lepton_ops.services.supervise; "
        f"print(sorted(set({controller_only!r}) & set(sys.modules)))"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "[]"


def test_a_deploy_gives_the_playbook_only_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What reaches ansible-runner (its extravars end up in the run's artifacts) holds no key
    and no token: only the files' paths."""
    from lepton_ops.deploy import deploy as deploy_module

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    node1: {ansible_host: 127.0.1.21}\n"
        "  children:\n    aggregator: {hosts: {node1: {}}}\n    workers: {hosts: {node1: {}}}\n",
        encoding="utf-8",
    )
    seen: list[object] = []
    monkeypatch.setattr(
        deploy_module, "run_playbook", lambda request, *a, **k: seen.append(request)
    )
    state = tmp_path / "state"
    deploy_module.deploy(inventory, state)
    (request,) = seen
    text = repr(request)
    secrets = [
        tls.ca_key_path(state),
        tls.node_cert_paths(state, "node1").key,
        *ensure_tokens(state).all(),
    ]
    for path in secrets:
        assert mode(path) == 0o600
        for line in path.read_text(encoding="utf-8").splitlines():
            if "-----" not in line:
                assert line not in text
    extravars = request.extravars  # type: ignore[attr-defined]
    assert extravars["lepton_tls_ca_file"] == str(tls.ca_cert_path(state))
    assert Path(extravars["lepton_tls_node_dir"]) == tls.node_cert_paths(state, "node1").cert.parent
