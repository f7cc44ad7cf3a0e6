"""One remediation pass: predict, decide (the policy), act (playbooks), verify, audit.

What ``lepton-ops remediate`` runs, and what ``cycle``, ``watch``, the schedule and the
``lepton.ops.predict_and_remediate`` playbook run after collecting telemetry.

- **Lock**: one pass at a time per state directory (a schedule and a person never act at
  once): a second pass fails at once with a clear line instead of waiting.
- **Inputs**: each node's risk from the current model (``lepton_ops.predict``); without a
  model, only nodes failing now (unreachable, a health check failing) are candidates.
  History and cordons come from the audit log.
- **Dry run**: the plan is computed and printed; nothing runs and nothing is written.
- **Verify**: as the action's spec says (:class:`~lepton_ops.remediate.ladder.Verify`):
  after a restart or a re-provisioning, the node's services must answer their health check
  and - with a model - the node's risk must be below the threshold on fresh telemetry,
  within ``verify_timeout_s``; a drain is verified by the aggregator listing it.
- **Predictive drain**: every node at risk is drained on the aggregator for twice the
  model's horizon, renewed by each pass while its risk stays high, so it gets no new shard
  and running jobs move its unstarted shards away before it fails. It takes no slot of the
  concurrency limit (it is cheap and lapses by itself) and is audited when first placed
  (``predictive-drain``, outside the ladder).
- **Audit**: every action is a row of the store's ``remediations`` table, written before
  it runs (so an action in progress counts against the concurrency limit even for another
  pass) and finished with its outcome and the evidence before and after.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from filelock import FileLock, Timeout

from lepton_ops.credentials.tokens import load_token
from lepton_ops.errors import BadInput, LeptonError, OperationFailed
from lepton_ops.inventory import load_fleet
from lepton_ops.remediate.actions import ActionOutcome, run_action
from lepton_ops.remediate.ladder import (
    PREDICTIVE_DRAIN,
    UNCORDON,
    Action,
    Verify,
    action_named,
    ladder,
    verified_outcomes,
)
from lepton_ops.remediate.policy import (
    Decision,
    NodeState,
    PastAction,
    Plan,
    PolicyConfig,
    cordoned_nodes,
    decide,
)
from lepton_ops.settings import StateLayout
from lepton_ops.telemetry.history import HistoryStore, history_path
from lepton_ops.telemetry.pull import ServiceTarget, fleet_targets, targets_verify
from lepton_ops.telemetry.records import RemediationRecord

if TYPE_CHECKING:
    from lepton_ops.predict.predictor import NodePrediction

VERIFY_TIMEOUT_S = 45.0
VERIFY_POLL_S = 1.0


@dataclass
class ActionResult:
    decision: Decision
    audit_id: int
    outcome: str
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.decision.to_dict(),
            "audit_id": self.audit_id,
            "outcome": self.outcome,
            "detail": self.detail,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class RemediationPass:
    plan: Plan
    dry_run: bool
    model: bool
    results: list[ActionResult] = field(default_factory=list)
    #: nodes drained (or kept drained) because they are predicted to fail
    drained: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        done = verified_outcomes()
        return all(result.outcome in done for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "model": self.model,
            "decisions": [d.to_dict() for d in self.plan.decisions],
            "actions": [result.to_dict() for result in self.results],
            "predictive_drains": self.drained,
        }


def lock_path(state_dir: Path) -> Path:
    return StateLayout(state_dir).remediation_lock


def default_trigger() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def remediate_once(
    state_dir: Path,
    inventory: Path,
    config: PolicyConfig,
    *,
    dry_run: bool = False,
    trigger: str | None = None,
    verify_timeout_s: float = VERIFY_TIMEOUT_S,
    refresh: Callable[[str], None] | None = None,
    only: list[str] | None = None,
    verbosity: int = 0,
) -> RemediationPass:
    """One pass over the fleet (over ``only`` when given). ``refresh(node)`` collects fresh
    telemetry for a node (for the verification of its risk); without it, only health is
    verified."""
    lock = FileLock(str(lock_path(state_dir)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OperationFailed(
            f"another remediation pass holds {lock_path(state_dir)} (a schedule, a watch or a "
            f"person): try again when it is done"
        ) from None
    try:
        return _remediate(
            state_dir, inventory, config, dry_run=dry_run, trigger=trigger or default_trigger(),
            verify_timeout_s=verify_timeout_s, refresh=refresh, only=only, verbosity=verbosity,
        )  # fmt: skip
    finally:
        lock.release()


def _remediate(
    state_dir: Path,
    inventory: Path,
    config: PolicyConfig,
    *,
    dry_run: bool,
    trigger: str,
    verify_timeout_s: float,
    refresh: Callable[[str], None] | None,
    only: list[str] | None,
    verbosity: int,
) -> RemediationPass:
    states, predictions, model = node_states(state_dir, nodes=only)
    with HistoryStore(history_path(state_dir)) as store:  # the pass's one opening
        if not dry_run:
            # This pass holds the lock, so an action still "in progress" belongs to a pass
            # that died (killed mid-action): close it, or it would block its node forever.
            for record in store.remediations():
                if record.finished_at is None:
                    store.finish_remediation(
                        record.id, "abandoned", after={}, detail="its pass ended without a verdict"
                    )
        audit = store.remediations()
        history = ladder_history(audit)
        plan = decide(states, history, time.time(), config, cordoned=cordons_in(audit))
        result = RemediationPass(plan, dry_run, model)
        if dry_run:
            return result
        at_risk = {
            state.node: predictions.get(state.node, {})
            for state in states
            if state.risk is not None and state.risk >= config.risk_threshold
        }
        if at_risk:
            result.drained = predictive_drain(state_dir, inventory, at_risk, trigger=trigger)
        if not plan.actions:
            return result

        def act(decision: Decision) -> ActionResult:
            return _act(
                decision, state_dir, inventory, config, store, trigger=trigger,
                before=predictions.get(decision.node, {}), verify_timeout_s=verify_timeout_s,
                refresh=refresh, verbosity=verbosity,
            )  # fmt: skip

        with ThreadPoolExecutor(max_workers=config.max_concurrent) as pool:
            result.results = list(pool.map(act, plan.actions))
        return result


def _act(
    decision: Decision,
    state_dir: Path,
    inventory: Path,
    config: PolicyConfig,
    store: HistoryStore,
    *,
    trigger: str,
    before: dict[str, Any],
    verify_timeout_s: float,
    refresh: Callable[[str], None] | None,
    verbosity: int,
) -> ActionResult:
    assert decision.action is not None
    node = decision.node
    audit_id = store.start_remediation(
        node, decision.action.value, trigger=trigger, reason=decision.reason, before=before
    )
    started = time.monotonic()
    try:
        outcome = run_action(
            decision.action, node, inventory, state_dir, reason=decision.reason,
            verbosity=verbosity,
        )  # fmt: skip
        after: dict[str, Any] = {}
        if not outcome.ok:
            verdict = "failed"
        else:
            verdict, after = _verify(
                decision.action, node, state_dir, inventory, config, verify_timeout_s, refresh
            )
        detail = outcome.detail
        if verdict == "verified" and decision.action.lifts_predictive_drain:
            detail += "; " + lift_predictive_drain(state_dir, inventory, node)
    except (LeptonError, OSError) as exc:
        verdict, after, detail = "failed", {}, str(exc)
        outcome = ActionOutcome(False, detail, time.monotonic() - started)
    store.finish_remediation(audit_id, verdict, after=after, detail=detail)
    return ActionResult(decision, audit_id, verdict, detail, time.monotonic() - started)


def _verify(
    action: Action,
    node: str,
    state_dir: Path,
    inventory: Path,
    config: PolicyConfig,
    timeout_s: float,
    refresh: Callable[[str], None] | None,
) -> tuple[str, dict[str, Any]]:
    """``(outcome, evidence)`` once the action's effect is seen, or the timeout passed."""
    if action.verify is Verify.RAN:
        return action.verified_as, {}
    if action.verify is Verify.DRAINED:
        drained = node in drained_nodes(state_dir, inventory)
        return (action.verified_as if drained else "unverified"), {"drained": drained}
    deadline = time.monotonic() + timeout_s
    evidence: dict[str, Any] = {}
    while True:
        health = node_health(state_dir, inventory, node)
        evidence = {"health": health}
        if health and all(health.values()):
            if refresh is None:
                return "verified", evidence
            refresh(node)
            states, predictions, _ = node_states(state_dir, nodes=[node])
            evidence["prediction"] = predictions.get(node, {})
            state = states[0] if states else None
            calm = (
                state is not None
                and not state.failing
                and (state.risk is None or state.risk < config.risk_threshold)
            )
            if calm:
                return "verified", evidence
        if time.monotonic() >= deadline:
            return "unverified", evidence
        time.sleep(VERIFY_POLL_S)


def node_states(
    state_dir: Path, nodes: list[str] | None = None
) -> tuple[list[NodeState], dict[str, dict[str, Any]], bool]:
    """Each node's state for the policy, its prediction (as evidence), and whether a model
    was used (without one: the streaming detector's alarms; without a store's data to
    judge, only the latest health of each node)."""
    from lepton_ops.predict import current_risk

    try:
        predictions = current_risk(state_dir)
    except LeptonError:
        predictions = None
    if predictions is not None:
        chosen = [p for p in predictions if nodes is None or p.node in nodes]
        states = [
            NodeState(
                p.node,
                _policy_risk(p),
                failing=p.failing_now,
                why=tuple(c.feature for c in p.top_features)
                or tuple(a.series for a in p.anomaly_series),
            )
            for p in chosen
        ]
        from lepton_ops.predict.model_store import has_current

        return states, {p.node: p.to_dict() for p in chosen}, has_current(state_dir)
    from lepton_ops.predict.predictor import down_now

    with HistoryStore(history_path(state_dir)) as store:
        down = down_now(store, store.nodes() if nodes is None else nodes, time.time())
    states = [NodeState(name, None, failing=failing) for name, failing in sorted(down.items())]
    return states, {name: {"failing_now": failing} for name, failing in down.items()}, False


def _policy_risk(prediction: NodePrediction) -> float | None:
    """The risk the policy compares with its threshold: the probability; without one (no
    classifier), the detector's anomaly score when it reached the detector's own fleet
    threshold, else none (its scale is not a probability's)."""
    if prediction.stale:
        return None
    if prediction.probability is not None:
        return prediction.probability
    return prediction.anomaly_score if prediction.at_risk else None


def node_health(state_dir: Path, inventory: Path, node: str) -> dict[str, bool]:
    """``{service: answers /healthz with 200}`` for the lepton services of ``node``."""
    found: dict[str, bool] = {}
    targets = fleet_targets(inventory, node)
    with _fleet_client(state_dir, targets, timeout=2.0) as client:
        for target in targets:
            try:
                found[target.service] = client.get(f"{target.url}/healthz").status_code == 200
            except httpx.HTTPError:
                found[target.service] = False
    return found


def _fleet_client(
    state_dir: Path,
    targets: Sequence[ServiceTarget],
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """A client of the fleet's services: direct (no proxy), https verified by the CA."""
    return httpx.Client(
        timeout=timeout,
        trust_env=False,
        headers=headers,
        verify=targets_verify(state_dir, targets),
    )


def ladder_history(audit: Iterable[RemediationRecord]) -> list[PastAction]:
    """The audit log's rungs of the ladder (uncordons and predictive drains are not)."""
    rungs = {action.name for action in ladder()}
    return [past_action(record) for record in audit if record.action in rungs]


def cordons_in(audit: Sequence[RemediationRecord]) -> set[str]:
    """The nodes the audit log shows cordoned and not uncordoned since."""
    lifted: dict[str, float] = {}
    for record in audit:
        if record.action == UNCORDON:
            lifted[record.node] = max(lifted.get(record.node, 0.0), record.started_at)
    return cordoned_nodes(ladder_history(audit), lifted)


def drained_nodes(state_dir: Path, inventory: Path) -> set[str]:
    """The nodes the aggregator lists as drained (empty when it cannot be asked)."""
    aggregators = [t for t in fleet_targets(inventory) if t.service == "lepton-aggregator"]
    if not aggregators:
        return set()
    token = load_token(state_dir)
    try:
        with _fleet_client(state_dir, aggregators, timeout=5.0) as client:
            answer = client.get(
                f"{aggregators[0].url}/v1/drains", headers={"Authorization": f"Bearer {token}"}
            )
        answer.raise_for_status()
        return {str(d["node"]) for d in answer.json()["drains"]}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return set()


def predictive_drain(
    state_dir: Path, inventory: Path, at_risk: dict[str, dict[str, Any]], *, trigger: str
) -> list[str]:
    """Drain each node at risk for twice its horizon (renewing a drain already placed); the
    nodes drained. A node the aggregator will not drain (the last one) is left as it is.
    Each new drain is audited (the store is opened once, after the drains)."""
    aggregators = [t for t in fleet_targets(inventory) if t.service == "lepton-aggregator"]
    if not aggregators:
        return []
    base = aggregators[0].url
    headers = {"Authorization": f"Bearer {load_token(state_dir)}"}
    drained: list[str] = []
    placed: list[tuple[str, str, dict[str, Any], Any]] = []
    already = drained_nodes(state_dir, inventory)
    with _fleet_client(state_dir, aggregators, timeout=5.0, headers=headers) as client:
        for node, prediction in sorted(at_risk.items()):
            horizon = float(prediction.get("horizon_s") or 60.0)
            probability = prediction.get("probability")
            reason = f"predicted to fail within {horizon:.0f}s (p={probability})"
            try:
                answer = client.put(
                    f"{base}/v1/drains/{node}",
                    json={"reason": reason, "ttl_s": max(int(2 * horizon), 1)},
                )
            except httpx.HTTPError:
                continue
            if answer.status_code != 200:
                continue
            drained.append(node)
            if node not in already:
                placed.append((node, reason, prediction, answer.json()))
    if placed:
        with HistoryStore(history_path(state_dir)) as store:
            for node, reason, prediction, drain in placed:
                audit_id = store.start_remediation(
                    node, PREDICTIVE_DRAIN, trigger=trigger, reason=reason, before=prediction
                )
                store.finish_remediation(
                    audit_id, "verified", after={"drain": drain}, detail="drained"
                )
    return drained


def lift_predictive_drain(state_dir: Path, inventory: Path, node: str) -> str:
    """After a verified fix, lift the node's drain if a prediction placed it (a drain by
    remediation or a cordon stays); what was done, in words."""
    aggregators = [t for t in fleet_targets(inventory) if t.service == "lepton-aggregator"]
    if not aggregators:
        return "no aggregator to undrain on"
    headers = {"Authorization": f"Bearer {load_token(state_dir)}"}
    try:
        with _fleet_client(state_dir, aggregators, timeout=5.0, headers=headers) as client:
            drains = client.get(f"{aggregators[0].url}/v1/drains").json()["drains"]
            mine = [d for d in drains if d["node"] == node]
            if not mine or not str(mine[0]["reason"]).startswith("predicted to fail"):
                return "no predictive drain to lift"
            client.delete(f"{aggregators[0].url}/v1/drains/{node}").raise_for_status()
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return f"the predictive drain could not be lifted: {exc}"
    return "predictive drain lifted"


def past_action(record: RemediationRecord) -> PastAction:
    return PastAction(
        record.node, action_named(record.action), record.started_at, record.finished_at
    )


def uncordon(
    state_dir: Path, inventory: Path, node: str, *, trigger: str | None = None
) -> ActionOutcome:
    """Lift a cordon: undrain the node and record it (the policy may act on it again).

    A node the inventory does not name is refused (BadInput) before anything runs.
    """
    fleet = load_fleet(inventory)
    if node not in fleet.names:
        raise BadInput(
            f"{node} is not in the inventory {inventory} (its nodes: {', '.join(fleet.names)})"
        )
    who = trigger or default_trigger()
    with HistoryStore(history_path(state_dir)) as store:
        audit_id = store.start_remediation(
            node, UNCORDON, trigger=who, reason="lifted by a person", before={}
        )
        outcome = run_action(Action.UNDRAIN, node, inventory, state_dir, reason="uncordon")
        store.finish_remediation(
            audit_id, "verified" if outcome.ok else "failed", after={}, detail=outcome.detail
        )
    return outcome
