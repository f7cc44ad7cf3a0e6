"""Dispatching the aggregator's jobs to the workers, and reducing their results.

One thread per worker pulls shards from the job's
:class:`~lepton_ops.jobs.shard_queue.ShardQueue` (own shards, then stolen ones, then
speculative copies of stragglers near the end) and POSTs each to the worker's
``/v1/shards/run`` with the aggregator's token towards the workers. Each result is
written to the store once per shard id (the first result wins; a duplicate - a
speculative copy finishing second - is ignored). A worker that fails twice in a row
(connection refused, timeout, an error answer) is marked lost: the shard it was running
and its pending shards go to the others. A worker that hangs (its connection accepted,
no answer) is found by a health thread that probes ``/healthz`` of every worker with a
shard in flight for a second or more: two missed probes and it is lost, within about 4
s, without waiting for the shard's read timeout. The job finishes as soon as every shard
has a result, without waiting for speculative copies still in flight. When every shard
has a result the partials are reduced in shard order and finalized; if every worker is
lost the job fails with the reason.

A job with artifacts sends their digests with each shard; a worker that lacks one
answers 409 naming it, and the worker's thread PUTs it there from the store and sends
the shard again (at most :data:`MAX_PUSH_ROUNDS` times in a row for one shard).

The job belongs to the aggregator: it is persisted (plan, then every result), so a
client can disconnect and come back, and an aggregator that restarts resumes its
running jobs (the queue is rebuilt from the stored plan minus the recorded shards).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from lepton_ops.credentials.tls import client_context
from lepton_ops.errors import BadInput, LeptonError
from lepton_ops.jobs.kinds import JobKind, get_kind, reduce_partials
from lepton_ops.jobs.planner import Plan, Shard, make_plan, parse_strategy
from lepton_ops.jobs.shard_queue import ShardQueue
from lepton_ops.services.aggregator_config import AggregatorConfig, WorkerSpec
from lepton_ops.services.artifacts import ARTIFACT_MIMETYPE
from lepton_ops.services.auth import TokenFile
from lepton_ops.services.drains import DrainRegistry
from lepton_ops.services.job_store import JobRecord, JobStatus, JobStore, StoreWriteError
from lepton_ops.services.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: How many times in a row a shard may find its worker without an artifact it was sent.
MAX_PUSH_ROUNDS = 3
#: Failed writes of shard results in a row (any worker) after which the job fails.
MAX_STORE_FAILURES = 5
#: Why a cancelled job failed (``DELETE /v1/jobs/{id}``).
CANCELLED_REASON = "cancelled"


class JobNotRunning(LeptonError):
    """The job cannot be cancelled: it has already finished."""


class WorkerFailed(LeptonError):
    """A worker did not answer a shard with a usable result."""


class JobRun:
    """One job being dispatched: a thread per worker, then the reduction."""

    def __init__(
        self, dispatcher: Dispatcher, record: JobRecord, kind: JobKind, queue: ShardQueue
    ) -> None:
        self.dispatcher = dispatcher
        self.config = dispatcher.config
        self.job_id = record.id
        self.params = record.params
        self.artifacts = dict(record.artifacts)
        self.kind = kind
        self.queue = queue
        self.plan: Plan = queue.plan
        self._stop = threading.Event()
        self._measured = threading.Event()
        # Set when every shard has a result, or when no worker thread is left. The job
        # finishes then, without waiting for speculative copies still in flight: their
        # late results are duplicates and are ignored.
        self._settled = threading.Event()
        self._workers_left = 0
        self._workers_lock = threading.Lock()
        #: When each worker's current request was sent (absent: none in flight).
        self._inflight: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._errors_lock = threading.Lock()
        #: Failed writes of results in a row; at MAX_STORE_FAILURES the job fails with
        #: the store's error (``_abort_reason``).
        self._store_failures = 0
        self._abort_reason: str | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lepton-job-{record.id[:8]}", daemon=True
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def cancel(self) -> None:
        """Stop dispatching for good: the job was cancelled (it is failed in the store)."""
        self._cancelled.set()
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def active(self) -> bool:
        return self._thread.is_alive()

    def lost_nodes(self) -> list[str]:
        return [node.name for node in self.plan.nodes if not self.queue.is_alive(node.name)]

    def drained_nodes(self) -> list[str]:
        return [node.name for node in self.plan.nodes if self.queue.is_drained(node.name)]

    def _run(self) -> None:
        workers: list[WorkerSpec] = []
        for node in self.plan.nodes:
            spec = self.config.worker(node.name)
            if spec is None:
                log.warning("job %s: worker %s is no longer configured", self.job_id, node.name)
                self.queue.mark_lost(node.name)
                self._error(node.name, "not in the aggregator's configuration")
                continue
            if node.weight == 0 or not self.queue.is_alive(node.name):
                continue
            workers.append(spec)
        self._workers_left = len(workers)
        if not workers or self.queue.finished:
            self._settled.set()
        for spec in workers:
            threading.Thread(
                target=self._worker_main,
                args=(spec,),
                name=f"lepton-job-{self.job_id[:8]}-{spec.name}",
                daemon=True,
            ).start()
        if workers:
            threading.Thread(
                target=self._watch_health,
                args=(workers,),
                name=f"lepton-job-{self.job_id[:8]}-health",
                daemon=True,
            ).start()
        self._settled.wait()
        if self._cancelled.is_set():
            log.info("job %s: cancelled, dispatch stopped", self.job_id)
            return
        try:
            if self._abort_reason is not None:
                self._fail(self._abort_reason)
                return
            self.dispatcher.store.save_queue_state(self.job_id, self.queue.to_dict())
            if self.queue.finished:
                self._finish()
            elif not self._stop.is_set():
                with self._errors_lock:
                    detail = "; ".join(f"{name}: {error}" for name, error in self._errors.items())
                reason = "every worker was lost before the job was done"
                self._fail(f"{reason} ({detail})" if detail else reason)
            else:
                log.info("job %s: dispatch stopped, it resumes on the next start", self.job_id)
        except StoreWriteError as exc:
            self._fail(str(exc))
        except Exception as exc:
            log.exception("job %s: could not be finished", self.job_id)
            self._fail(f"the aggregator could not finish the job: {exc.__class__.__name__}")

    # ------------------------------------------------------------------ one worker

    def _worker_main(self, spec: WorkerSpec) -> None:
        try:
            self._worker_loop(spec)
        finally:
            with self._workers_lock:
                self._workers_left -= 1
                if self._workers_left == 0:
                    self._settled.set()

    def _worker_loop(self, spec: WorkerSpec) -> None:
        failures = 0
        while not self._stop.is_set() and not self.queue.finished:
            if not self.queue.is_alive(spec.name):
                return
            shard = self.queue.next_shard_for(spec.name, speculative=True)
            if shard is None:
                self._stop.wait(self.config.poll_s)
                continue
            self._inflight[spec.name] = time.monotonic()
            try:
                partial, seconds = self._send(spec, shard)
            except WorkerFailed as exc:
                self.queue.release(shard.id, spec.name)
                failures += 1
                self._error(spec.name, str(exc))
                log.warning(
                    "job %s: worker %s failed shard %s (%d in a row): %s",
                    self.job_id,
                    spec.name,
                    shard.id,
                    failures,
                    exc,
                )
                if failures >= self.config.max_failures:
                    self._lose(spec.name)
                    return
                self._stop.wait(self.config.retry_delay_s)
                continue
            finally:
                self._inflight.pop(spec.name, None)
            failures = 0
            try:
                self._accept(spec.name, shard, partial, seconds)
            except StoreWriteError as exc:
                # The store, not the worker, failed: this attempt only; the shard runs again.
                self.queue.release(shard.id, spec.name)
                if self._store_failed(str(exc)):
                    return
                self._stop.wait(self.config.retry_delay_s)

    def _store_failed(self, error: str) -> bool:
        """Count a failed write of a result; True once the job must fail because of it."""
        with self._errors_lock:
            self._store_failures += 1
            failures = self._store_failures
        log.error("job %s: %s (%d in a row)", self.job_id, error, failures)
        if failures < MAX_STORE_FAILURES:
            return False
        self._abort_reason = error
        self._stop.set()
        return True

    def _lose(self, node: str) -> None:
        if not self.queue.is_alive(node):
            return
        moved = self.queue.mark_lost(node)
        log.warning(
            "job %s: worker %s is lost; %d pending shards go to the others",
            self.job_id,
            node,
            len(moved),
        )

    # ------------------------------------------------------------------ health

    def _watch_health(self, workers: list[WorkerSpec]) -> None:
        """Probe ``/healthz`` of each worker whose shard has run ``health_interval_s`` or
        longer; after ``max_failures`` missed probes in a row the worker is lost.

        A shard's read timeout has to allow for a long shard, so a worker that hangs
        (stopped, cut off, out of memory) would keep its shards for that long; its
        health endpoint answers in milliseconds even while a shard runs (other gunicorn
        threads serve it), so a hung worker is found in a few seconds instead.
        """
        config = self.config
        misses = {spec.name: 0 for spec in workers}
        with ThreadPoolExecutor(len(workers), thread_name_prefix="lepton-health") as pool:
            while not self._settled.wait(config.health_interval_s) and not self._stop.is_set():
                now = time.monotonic()
                due = []
                for spec in workers:
                    sent = self._inflight.get(spec.name)
                    if sent is None or not self.queue.is_alive(spec.name):
                        misses[spec.name] = 0
                    elif now - sent >= config.health_interval_s:
                        due.append(spec)
                answers = list(pool.map(self._healthy, due))
                for spec, healthy in zip(due, answers, strict=True):
                    misses[spec.name] = 0 if healthy else misses[spec.name] + 1
                    if misses[spec.name] >= config.max_failures and self.queue.is_alive(spec.name):
                        self._error(spec.name, "stopped answering its health checks")
                        self._lose(spec.name)

    def _healthy(self, spec: WorkerSpec) -> bool:
        try:
            response = self.dispatcher.client.get(
                f"{spec.url}/healthz", timeout=self.config.health_timeout_s
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _send(self, spec: WorkerSpec, shard: Shard) -> tuple[dict[str, Any], float]:
        body: dict[str, Any] = {
            "job_id": self.job_id,
            "shard_id": shard.id,
            "kind": self.kind.name,
            "params": self.params,
            "start": shard.start,
            "stop": shard.stop,
        }
        if self.artifacts:
            body["artifacts"] = self.artifacts
        timeout = httpx.Timeout(
            self._read_timeout(spec.name, shard), connect=self.config.connect_timeout_s
        )
        for _ in range(MAX_PUSH_ROUNDS + 1):
            try:
                response = self.dispatcher.client.post(
                    f"{spec.url}/v1/shards/run", json=body, timeout=timeout
                )
            except httpx.HTTPError as exc:
                raise WorkerFailed(f"{exc.__class__.__name__}: {exc}") from None
            missing = self._missing_artifacts(response)
            if not missing:
                break
            for name, digest in missing.items():
                self._push(spec, name, digest)
        if response.status_code != 200:
            raise WorkerFailed(f"HTTP {response.status_code}: {_error_text(response)}")
        try:
            data = response.json()
            if data["job_id"] != self.job_id or data["shard_id"] != shard.id:
                raise ValueError("the answer is for another shard")
            partial = self.kind.check_partial(data["partial"])
            seconds = data["seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError(f"seconds is not a number: {seconds!r}")
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError(f"seconds out of range: {seconds!r}")
        except (ValueError, KeyError, TypeError, BadInput) as exc:
            raise WorkerFailed(f"unusable answer: {exc}") from None
        return partial, float(seconds)

    def _missing_artifacts(self, response: httpx.Response) -> dict[str, str]:
        """The job's artifacts a 409 answer says the worker lacks (none otherwise)."""
        if response.status_code != 409 or not self.artifacts:
            return {}
        try:
            missing = response.json().get("missing")
        except (ValueError, AttributeError):
            return {}
        if not isinstance(missing, dict):
            return {}
        return {
            name: digest for name, digest in missing.items() if self.artifacts.get(name) == digest
        }

    def _push(self, spec: WorkerSpec, name: str, digest: str) -> None:
        """PUT the job's artifact ``name`` to the worker (from the store)."""
        data = self.dispatcher.store.artifact(digest)
        if data is None:
            raise WorkerFailed(f"artifact {name} ({digest}) is no longer in the job store")
        timeout = httpx.Timeout(
            self.config.first_read_timeout_s, connect=self.config.connect_timeout_s
        )
        try:
            response = self.dispatcher.client.put(
                f"{spec.url}/v1/artifacts/{digest}",
                params={"kind": self.kind.name, "name": name},
                content=data,
                headers={"Content-Type": ARTIFACT_MIMETYPE},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise WorkerFailed(
                f"sending artifact {name}: {exc.__class__.__name__}: {exc}"
            ) from None
        if response.status_code not in (200, 201):
            raise WorkerFailed(
                f"sending artifact {name}: HTTP {response.status_code}: {_error_text(response)}"
            )
        log.info(
            "job %s: sent artifact %s (%d bytes) to %s", self.job_id, name, len(data), spec.name
        )

    def _read_timeout(self, node: str, shard: Shard) -> float:
        config = self.config
        if not self._measured.is_set():
            return config.first_read_timeout_s
        speed = self.queue.speed(node)
        expected = shard.size / speed if speed > 0 else math.inf
        wanted = max(config.min_read_timeout_s, expected * config.read_timeout_factor)
        return min(wanted, config.max_read_timeout_s)

    def _accept(self, node: str, shard: Shard, partial: dict[str, Any], seconds: float) -> None:
        metrics = self.dispatcher.metrics
        new = self.dispatcher.store.record_shard(
            self.job_id, shard.id, node=node, partial=partial, seconds=seconds
        )
        with self._errors_lock:
            self._store_failures = 0
        self.queue.complete(shard.id, node)
        if self.queue.finished:
            self._settled.set()
        if not new:
            metrics.shard_duplicate(self.kind.name)
            log.info("job %s: duplicate result for shard %s from %s", self.job_id, shard.id, node)
            return
        metrics.shard_done(self.kind.name)
        if seconds > 0 and shard.size > 0:
            self.queue.observe(node, shard.size, seconds)
            self._measured.set()

    def _error(self, node: str, error: str) -> None:
        with self._errors_lock:
            self._errors[node] = error[:300]

    # ------------------------------------------------------------------ the end

    def _finish(self) -> None:
        store = self.dispatcher.store
        results = {result.shard_id: result for result in store.shard_results(self.job_id)}
        missing = [shard.id for shard in self.plan.shards if shard.id not in results]
        if missing:
            self._fail(f"shards without a result: {', '.join(missing[:10])}")
            return
        partials = [results[shard.id].partial for shard in self.plan.shards]
        result = self.kind.finalize(reduce_partials(self.kind, partials))
        store.finish_job(self.job_id, JobStatus.SUCCEEDED, result=result)
        log.info("job %s succeeded", self.job_id)

    def _fail(self, reason: str) -> None:
        log.error("job %s failed: %s", self.job_id, reason)
        try:
            self.dispatcher.store.finish_job(self.job_id, JobStatus.FAILED, reason=reason)
        except StoreWriteError as exc:
            # Still running in the store: the job resumes on the next start.
            log.error("job %s: its failure could not be recorded: %s", self.job_id, exc)


class BearerFromFile(httpx.Auth):
    """``Authorization: Bearer`` with the token file's current token, read again when the
    file changes (a rotation switches the token without a restart)."""

    def __init__(self, token: TokenFile) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token.current()}"
        yield request


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])[:200]
    except ValueError:
        pass
    return response.reason_phrase or "error"


class Dispatcher:
    """The aggregator's jobs: submits, runs, resumes and stops them."""

    def __init__(
        self,
        config: AggregatorConfig,
        store: JobStore,
        token: TokenFile,
        metrics: ServiceMetrics,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        workers = max(len(config.workers), 1)
        self.client = httpx.Client(
            auth=BearerFromFile(token),
            limits=httpx.Limits(
                max_connections=workers * 16, max_keepalive_connections=workers * 4
            ),
            follow_redirects=False,
            trust_env=False,  # the fleet's traffic never goes through a proxy
            verify=client_context(config.ca_file) if config.ca_file is not None else True,
        )
        self.drains = DrainRegistry(store, [worker.name for worker in config.workers])
        self._runs: dict[str, JobRun] = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self,
        kind_name: str,
        params: dict[str, Any],
        tasks: int,
        strategy: str,
        shard_size: int | None = None,
        artifacts: dict[str, str] | None = None,
    ) -> JobRecord:
        kind = get_kind(kind_name)
        given = params.get("tasks")
        if given is not None and given != tasks:
            raise BadInput(f"params.tasks ({given!r}) differs from tasks ({tasks})")
        checked = kind.validate({**params, "tasks": tasks})
        shard_limit = kind.shard_tasks_limit(checked)
        digests = dict(artifacts or {})
        self._check_artifacts(kind, checked, digests)
        speeds = {w.name: w.speed for w in self.config.workers if w.speed is not None}
        # A drained node is planned with weight 0: it gets nothing of a new job.
        plan = make_plan(
            [
                (worker.name, 0 if self.drains.is_drained(worker.name) else worker.weight)
                for worker in self.config.workers
            ],
            tasks,
            strategy=parse_strategy(strategy),
            shard_size=shard_size,
            speeds=speeds,
            max_shard_size=shard_limit,
        )
        record = self.store.create_job(
            uuid.uuid4().hex,
            kind=kind.name,
            params=checked,
            strategy=plan.strategy.value,
            plan=plan.to_dict(),
            artifacts=digests,
        )
        self._start(record, kind, ShardQueue(plan, drained=self.drains.is_drained))
        return record

    def _check_artifacts(
        self, kind: JobKind, params: dict[str, Any], digests: dict[str, str]
    ) -> None:
        """BadInput unless the store holds the job's artifacts and they fit its parameters."""
        kind.check_artifact_names(digests)
        if not digests:
            return
        loaded: dict[str, Any] = {}
        for name, digest in digests.items():
            data = self.store.artifact(digest)
            if data is None:
                raise BadInput(
                    f"artifact {name} ({digest}) is not on the aggregator: upload it first "
                    f"(PUT /v1/artifacts/{digest})"
                )
            loaded[name] = kind.load_artifact(name, data)
        kind.check_artifacts(params, loaded)

    def resume_running(self) -> list[str]:
        """Start dispatching the store's running jobs again; their ids."""
        resumed: list[str] = []
        for record in self.store.jobs(JobStatus.RUNNING):
            try:
                kind = get_kind(record.kind)
                plan = Plan.from_dict(record.plan)
                queue = ShardQueue(plan, drained=self.drains.is_drained)
                sizes = {shard.id: shard.size for shard in plan.shards}
                for result in self.store.shard_results(record.id):
                    if result.shard_id not in sizes:
                        log.warning(
                            "job %s: ignoring a stored result for %s, not in its plan",
                            record.id,
                            result.shard_id,
                        )
                        continue
                    queue.complete(result.shard_id, result.node)
                    if result.seconds > 0 and sizes[result.shard_id] > 0:
                        queue.observe(result.node, sizes[result.shard_id], result.seconds)
            except LeptonError as exc:
                log.error("job %s cannot be resumed: %s", record.id, exc)
                self.store.finish_job(record.id, JobStatus.FAILED, reason=f"not resumable: {exc}")
                continue
            log.info("job %s resumes: %d shards left", record.id, queue.counts()["pending"])
            self._start(record, kind, queue)
            resumed.append(record.id)
        return resumed

    def _start(self, record: JobRecord, kind: JobKind, queue: ShardQueue) -> None:
        run = JobRun(self, record, kind, queue)
        with self._lock:
            if self._closed:
                raise BadInput("the aggregator is shutting down")
            self._runs[record.id] = run
        run.start()

    def run(self, job_id: str) -> JobRun | None:
        with self._lock:
            return self._runs.get(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a running job: it fails with the reason ``cancelled``, its dispatch stops
        and every worker of its plan is told to stop its shards (``DELETE
        /v1/shards/{job_id}``, best effort). JobNotRunning if it has already finished."""
        record = self.store.job(job_id)
        if record.status is JobStatus.RUNNING:
            self.store.finish_job(job_id, JobStatus.FAILED, reason=CANCELLED_REASON)
            record = self.store.job(job_id)
            cancelled = record.reason == CANCELLED_REASON
        else:
            cancelled = False
        if not cancelled:
            detail = f" ({record.reason})" if record.reason else ""
            raise JobNotRunning(
                f"job {job_id} has already finished: it {record.status.value}{detail}"
            )
        run = self.run(job_id)
        if run is not None:
            run.cancel()
        names = {str(node["name"]) for node in record.plan["nodes"]}
        targets = [worker for worker in self.config.workers if worker.name in names]
        if targets:
            with ThreadPoolExecutor(len(targets), thread_name_prefix="lepton-cancel") as pool:
                list(pool.map(lambda worker: self._cancel_on(worker, job_id), targets))
        log.info("job %s cancelled", job_id)
        return record

    def _cancel_on(self, worker: WorkerSpec, job_id: str) -> None:
        timeout = httpx.Timeout(self.config.health_timeout_s, connect=self.config.connect_timeout_s)
        try:
            response = self.client.delete(f"{worker.url}/v1/shards/{job_id}", timeout=timeout)
        except httpx.HTTPError as exc:
            log.warning("job %s: could not cancel on %s: %s", job_id, worker.name, exc)
            return
        if response.status_code != 200:
            log.warning(
                "job %s: %s answered the cancel with HTTP %d: %s",
                job_id,
                worker.name,
                response.status_code,
                _error_text(response),
            )

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Wait until ``job_id``'s dispatch is over; True when it is."""
        run = self.run(job_id)
        return run is None or run.join(timeout)

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Stop dispatching (in-flight shards finish and are recorded); running jobs stay
        running in the store and resume on the next start."""
        with self._lock:
            self._closed = True
            runs = list(self._runs.values())
        for run in runs:
            run.stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        for run in runs:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            run.join(left)
        self.client.close()


__all__ = ["CANCELLED_REASON", "Dispatcher", "JobNotRunning", "JobRun", "WorkerFailed"]
