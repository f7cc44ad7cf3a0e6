"""A typed client for the aggregator's job API, and the logic behind ``lepton-ops job``.

The aggregator is found in the inventory (:func:`aggregator_url`: the single host of the
``aggregator`` group, its ``ansible_host`` and ``lepton_aggregator_port``, default 8700).
``LEPTON_OPS_AGGREGATOR_URL`` overrides that lookup (for tests, and for reaching the
aggregator through a tunnel). The bearer token is read from the controller's token file
and only ever sent in the ``Authorization`` header: it is never printed or logged. An
``https://`` aggregator's certificate is verified against the controller's CA
(:mod:`lepton_ops.credentials.tls`); nothing falls back to plain http.

Kinds with artifacts (``predict --model M --data D``): :func:`job_inputs` reads and checks
the files on the controller (and derives the task count: one per data row), the client
uploads each artifact once (:meth:`AggregatorClient.upload_artifact`: content-addressed,
skipped when the aggregator already holds it) and the job names them by digest.

Following a job (:func:`follow`, :func:`outcome`) outlives an aggregator restart: a
status or result request that finds the aggregator not answering (connection refused,
timeout, 502/503/504) is tried again with backoff for up to :data:`RECONNECT_S` seconds
since the last answer; only then does it fail. The job itself is the aggregator's: it
resumes there after the restart. Submitting is never retried (it is not idempotent).
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from lepton_ops.credentials.tls import url_verify
from lepton_ops.credentials.tokens import read_token_file, service_token_file
from lepton_ops.errors import BadInput, OperationFailed
from lepton_ops.inventory import load_fleet
from lepton_ops.inventory.fleet import AGGREGATOR_GROUP
from lepton_ops.jobs.history import JobHistory, inventory_plans
from lepton_ops.jobs.kinds import MAX_ARTIFACT_BYTES, JobKind, artifact_digest, get_kind

#: Overrides the inventory lookup of the aggregator's URL (tests, ssh tunnels).
AGGREGATOR_URL_ENV = "LEPTON_OPS_AGGREGATOR_URL"
PORT_VAR = "lepton_aggregator_port"
DEFAULT_PORT = 8700
DEFAULT_TIMEOUT_S = 10.0
#: Uploading an artifact may take longer than an API call (up to 64 MiB).
UPLOAD_TIMEOUT_S = 120.0
FINISHED = frozenset({"succeeded", "failed"})
#: How long following a job keeps trying to reach an aggregator that stopped answering
#: (it restarts: its supervisor brings it back and the job resumes) before giving up.
RECONNECT_S = 60.0
#: The pauses between those tries (the last one repeats).
RECONNECT_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
#: Answers that mean the aggregator is not there right now (a proxy, a restart).
UNAVAILABLE = frozenset({502, 503, 504})


def aggregator_url(inventory: Path) -> str:
    """``https://ADDRESS:PORT`` of the inventory's single ``aggregator`` host (``http://``
    only where the inventory sets ``lepton_insecure_http``, the explicit lab option)."""
    fleet = load_fleet(inventory)
    hosts = [node for node in fleet.nodes if node.is_aggregator]
    if len(hosts) != 1:
        names = ", ".join(node.name for node in hosts) or "none"
        raise BadInput(
            f"inventory {inventory} must have exactly one host in the "
            f"'{AGGREGATOR_GROUP}' group, has {len(hosts)} ({names})"
        )
    node = hosts[0]
    raw = node.vars.get(PORT_VAR, DEFAULT_PORT)
    try:
        port = int(str(raw).strip())
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise BadInput(f"host {node.name}: {PORT_VAR} must be a port number, got {raw!r}")
    return f"{node.scheme}://{node.address}:{port}"


class AggregatorClient:
    """The aggregator's job API: :meth:`submit`, :meth:`status`, :meth:`result`, :meth:`list`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        token_file: Path | None = None,
        history: JobHistory | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        #: Where :func:`outcome` records the jobs seen finishing (None: nowhere).
        self.history = history
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )

    def __enter__(self) -> AggregatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any],
        tasks: int,
        strategy: str = "weighted",
        shard_size: int | None = None,
        artifacts: Mapping[str, str] | None = None,
    ) -> str:
        """Submit a job; its id. ``artifacts``: ``{name: sha256}`` of uploaded artifacts."""
        body: dict[str, Any] = {
            "kind": kind,
            "params": dict(params),
            "tasks": tasks,
            "strategy": strategy,
        }
        if shard_size is not None:
            body["shard_size"] = shard_size
        if artifacts:
            body["artifacts"] = dict(artifacts)
        data = self._request("POST", "/v1/jobs", json=body)
        return str(data["job_id"])

    def has_artifact(self, digest: str) -> bool:
        """Whether the aggregator already holds the artifact ``digest``."""
        response = self._send("GET", f"/v1/artifacts/{digest}")
        if response.status_code == 404:
            return False
        self._answer(response, "GET", "/v1/artifacts")
        return True

    def upload_artifact(self, data: bytes) -> str:
        """Upload an artifact unless the aggregator holds it already; its SHA-256."""
        digest = artifact_digest(data)
        if not self.has_artifact(digest):
            path = f"/v1/artifacts/{digest}"
            response = self._send(
                "PUT",
                path,
                content=data,
                headers={"Content-Type": "application/octet-stream"},
                timeout=max(self.timeout, UPLOAD_TIMEOUT_S),
            )
            self._answer(response, "PUT", path)
        return digest

    def upload_artifacts(self, artifacts: Mapping[str, bytes]) -> dict[str, str]:
        """Each artifact uploaded (once); ``{name: sha256}``."""
        return {name: self.upload_artifact(data) for name, data in artifacts.items()}

    def status(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}", job_id=job_id)

    def result(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}/result", job_id=job_id)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a running job (it fails: cancelled); OperationFailed if it has finished."""
        return self._request("DELETE", f"/v1/jobs/{job_id}", job_id=job_id)

    def list(self) -> list[dict[str, Any]]:
        jobs = self._request("GET", "/v1/jobs")["jobs"]
        assert isinstance(jobs, list)
        return jobs

    def _request(
        self, method: str, path: str, *, json: Any = None, job_id: str | None = None
    ) -> dict[str, Any]:
        return self._answer(self._send(method, path, json=json), method, path, job_id=job_id)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._send_once(method, path, **kwargs)
        if response.status_code == 401 and self._token_changed():
            # The token was rotated since this client read it: once more with the new one.
            response = self._send_once(method, path, **kwargs)
        return response

    def _token_changed(self) -> bool:
        """Whether the token file now holds another token to send (it then is used)."""
        if self.token_file is None:
            return False
        try:
            token = read_token_file(self.token_file)
        except BadInput:
            return False
        header = f"Bearer {token}"
        if self._http.headers.get("Authorization") == header:
            return False
        self._http.headers["Authorization"] = header
        return True

    def _send_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise OperationFailed(
                f"aggregator at {self.base_url} is not answering: is it deployed? "
                f"(lepton-ops deploy) [{type(exc).__name__}]",
                transient=True,
            ) from None

    def _answer(
        self, response: httpx.Response, method: str, path: str, *, job_id: str | None = None
    ) -> dict[str, Any]:
        if response.status_code == 401:
            where = f"the token in {self.token_file}" if self.token_file else "the token"
            raise OperationFailed(
                f"aggregator at {self.base_url} refused {where} (401): "
                f"deploy again with 'lepton-ops deploy' so both sides share it"
            )
        if response.status_code == 404 and job_id is not None:
            raise BadInput(f"no job {job_id}")
        if response.status_code in (400, 413):
            raise BadInput(_error_text(response))
        if response.status_code == 409:
            raise OperationFailed(_error_text(response))
        if response.status_code in UNAVAILABLE:
            raise OperationFailed(
                f"aggregator at {self.base_url}: {method} {path} answered "
                f"{response.status_code}: {_error_text(response)}",
                transient=True,
            )
        if response.status_code >= 300:
            raise OperationFailed(
                f"aggregator at {self.base_url}: {method} {path} answered "
                f"{response.status_code}: {_error_text(response)}"
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OperationFailed(f"aggregator at {self.base_url} answered {path} with no JSON")
        return data


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return " ".join(str(data["error"]).split())[:300]
    return response.reason_phrase or f"HTTP {response.status_code}"


def connect(
    state_dir: Path,
    inventory: Callable[[], Path],
    timeout: float = DEFAULT_TIMEOUT_S,
) -> AggregatorClient:
    """A client for the fleet's aggregator: ``$LEPTON_OPS_AGGREGATOR_URL`` if set, else the
    inventory's (``inventory`` is only called then), with the controller's token.

    The jobs it sees finish are recorded in the controller's job history (their plan made
    over the inventory, when there is one: see :mod:`lepton_ops.jobs.history`)."""
    url = os.environ.get(AGGREGATOR_URL_ENV) or aggregator_url(inventory())
    path = service_token_file(state_dir)
    history = JobHistory(state_dir, inventory_plans(inventory))
    return AggregatorClient(
        url,
        read_token_file(path),
        timeout,
        token_file=path,
        history=history,
        verify=url_verify(state_dir, url),
    )


# --------------------------------------------------------------------------- job options


def job_params(kind_name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The kind's parameters from the ``job run`` options given (None: not given): every
    kind's declared parameters are ``job run`` options (see ``lepton_ops.cli.kind_options``).

    An option the kind does not declare is BadInput (one line naming the kind's options);
    values are checked by the kind's :class:`~lepton_ops.jobs.kinds.base.Param`.
    """
    kind = get_kind(kind_name)
    declared = {param.name: param for param in kind.params}
    given = {name: value for name, value in options.items() if value is not None}
    _refuse_undeclared(kind, [name for name in given if name not in declared])
    return {name: declared[name].coerce(value) for name, value in given.items()}


def _refuse_undeclared(kind: JobKind, names: list[str]) -> None:
    if names:
        flags = ", ".join("--" + name.replace("_", "-") for name in names)
        flags_ok = [param.flag for param in kind.params] + [a.flag for a in kind.artifacts]
        accepted = ", ".join(flags_ok) or "none"
        raise BadInput(f"job kind {kind.name} does not take {flags} (its options: {accepted})")


@dataclass(frozen=True)
class JobInputs:
    """What ``job run`` submits: the parameters, the task count and the artifacts' bytes."""

    params: dict[str, Any]
    tasks: int
    artifacts: dict[str, bytes]


def job_inputs(
    kind_name: str,
    options: Mapping[str, Any],
    files: Mapping[str, Path | None],
    tasks: int | None,
) -> JobInputs:
    """The job's inputs from the ``job run`` options, files and ``--tasks`` (None: not given).

    Each artifact file is read and loaded by the kind here, on the controller, so a
    missing, oversized or unsafe file is one BadInput line before anything is sent. A
    kind whose artifacts imply the task count (``predict``: one task per data row) needs
    no ``--tasks``; a ``--tasks`` that disagrees is BadInput.
    """
    kind = get_kind(kind_name)
    given = {name: Path(path) for name, path in files.items() if path is not None}
    declared = {param.name for param in kind.params} | {spec.name for spec in kind.artifacts}
    named = [name for name, value in options.items() if value is not None] + list(given)
    _refuse_undeclared(kind, [name for name in named if name not in declared])
    params = job_params(kind_name, options)
    kind.check_artifact_names(given)
    raw = {name: read_artifact_file(kind, name, path) for name, path in given.items()}
    loaded: dict[str, Any] = {}
    for name, data in raw.items():
        spec = kind.artifact_spec(name)
        try:
            loaded[name] = kind.load_artifact(name, data)
        except BadInput as exc:
            raise BadInput(f"{spec.flag} {given[name]}: {exc}") from None
    if tasks is None:
        tasks = kind.tasks_from_artifacts(loaded)
        if tasks is None:
            raise BadInput(f"job kind {kind.name} needs --tasks")
    if kind.artifacts:
        kind.check_artifacts({**params, "tasks": tasks}, loaded)
    return JobInputs(params=params, tasks=tasks, artifacts=raw)


def read_artifact_file(kind: JobKind, name: str, path: Path) -> bytes:
    """The bytes of the file given for artifact ``name`` (BadInput, one line, if unusable)."""
    spec = kind.artifact_spec(name)
    where = f"{spec.flag} {path}"
    if spec.suffixes and path.suffix.lower() not in spec.suffixes:
        raise BadInput(f"{where}: must be a {' or '.join(spec.suffixes)} file")
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadInput(f"{where} is not a file")
        if size > MAX_ARTIFACT_BYTES:
            raise BadInput(
                f"{where} is {size / 2**20:.1f} MiB: artifacts are limited to "
                f"{MAX_ARTIFACT_BYTES // 2**20} MiB"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{where} does not exist") from None
    except OSError as exc:
        raise BadInput(f"{where} cannot be read: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- following

Progress = Callable[[dict[str, Any]], None]
#: Told why the aggregator is being tried again, and how many seconds are left.
Reconnecting = Callable[[str, float], None]
T = TypeVar("T")


def reconnecting(
    call: Callable[[], T],
    *,
    reconnect_s: float = RECONNECT_S,
    on_retry: Reconnecting | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()``, tried again with backoff while the aggregator is unreachable (a transient
    OperationFailed), for up to ``reconnect_s`` seconds; then OperationFailed saying how
    long it was tried (0: not tried again)."""
    deadline: float | None = None
    attempt = 0
    while True:
        try:
            return call()
        except OperationFailed as exc:
            if not exc.transient or reconnect_s <= 0:
                raise
            now = clock()
            if deadline is None:
                deadline = now + reconnect_s
            left = deadline - now
            if left <= 0:
                raise OperationFailed(
                    f"{exc}; still not answering after {reconnect_s:g} s of retrying"
                ) from None
            if on_retry is not None:
                on_retry(str(exc), left)
            sleep(min(RECONNECT_BACKOFF_S[attempt], left))
            attempt = min(attempt + 1, len(RECONNECT_BACKOFF_S) - 1)


def follow(
    client: AggregatorClient,
    job_id: str,
    on_status: Progress | None = None,
    *,
    poll_s: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    reconnect_s: float = RECONNECT_S,
    on_retry: Reconnecting | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the job's status every ``poll_s`` until it has finished; its last status.

    An aggregator that stops answering is tried again for up to ``reconnect_s`` seconds
    (:func:`reconnecting`): a restarted aggregator resumes the job, and following goes on.
    """
    while True:
        status = reconnecting(
            lambda: client.status(job_id),
            reconnect_s=reconnect_s,
            on_retry=on_retry,
            sleep=sleep,
            clock=clock,
        )
        if on_status is not None:
            on_status(status)
        if status.get("status") in FINISHED:
            return status
        sleep(poll_s)


@dataclass(frozen=True)
class Outcome:
    """A finished job: its last status and, when it succeeded, its result."""

    status: dict[str, Any]
    result: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.status.get("status") == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        """``{"job_id", "status", "kind", "result", "per_node", "makespan_s"}``."""
        per_node = {
            str(node): {"tasks": int(entry["tasks"]), "seconds": float(entry["seconds"])}
            for node, entry in (self.status.get("per_node") or {}).items()
        }
        return {
            "job_id": self.status["job_id"],
            "status": self.status["status"],
            "kind": self.status["kind"],
            "result": None if self.result is None else self.result.get("result"),
            "per_node": per_node,
            "makespan_s": self.status.get("makespan_s"),
        }


def outcome(
    client: AggregatorClient,
    status: dict[str, Any],
    *,
    reconnect_s: float = RECONNECT_S,
    on_retry: Reconnecting | None = None,
) -> Outcome:
    """The outcome of a finished job (fetches the result when it succeeded, reconnecting
    as :func:`follow` does).

    Every way of running a job ends here, so this is where the job is written to the
    client's job history (best-effort: a store error is a warning, never the job's).
    """
    history = getattr(client, "history", None)
    if history is not None:
        history.record(status)
    if status.get("status") == "succeeded":
        job_id = str(status["job_id"])
        fetched = reconnecting(
            lambda: client.result(job_id), reconnect_s=reconnect_s, on_retry=on_retry
        )
        return Outcome(status, fetched)
    return Outcome(status, None)


def failure_line(status: Mapping[str, Any]) -> str:
    """One line saying why a job failed."""
    reason = " ".join(str(status.get("reason") or "no reason recorded").split())
    return f"job {status.get('job_id')} failed: {reason}"


__all__ = [
    "AGGREGATOR_URL_ENV",
    "RECONNECT_S",
    "AggregatorClient",
    "JobInputs",
    "Outcome",
    "aggregator_url",
    "connect",
    "failure_line",
    "follow",
    "job_inputs",
    "job_params",
    "outcome",
    "read_artifact_file",
    "reconnecting",
]
