"""spot-interruption: the warnings EC2 gives a spot instance, sent the way AWS sends them on demand.

AWS Fault Injection Service runs `aws:ec2:send-spot-instance-interruptions` against explicit spot instance
ARNs. Its `durationBeforeInterruption` (PT2M..PT15M) is the time from the action's start to the
interruption: EC2 raises the rebalance recommendation (IMDS `events/recommendations/rebalance`) at once, the
two-minute interruption notice (IMDS `spot/instance-action`, the EventBridge warning) two minutes before the
interruption, and reclaims the instance at the end. So `notice: 2m` sends both signals together, and
`rebalance_first: true` with a longer notice gives the deployment the recommendation (notice - 2m) ahead of
the interruption notice, which is when a managed node group's Capacity Rebalancing launches a replacement
and a handler with rebalance monitoring cordons. That is the only way to rehearse a real spot interruption,
so the harness builds a one-off experiment template for the chosen node's instance, starts it, and stops it
(and deletes the template) on revert.

Landed means FIS reports the action running *and* the outside world shows the first signal: the node's
interruption handler cordoned it, tainted it or posted an Event about it (`RebalanceRecommendation`,
`SpotInterruption`, as aws-node-termination-handler and Karpenter post them), or EC2 already shows the
instance shutting down. Each of these is something a real EKS cluster also shows; IMDS is not reachable
from outside the instance, so it is not used.

The interruption time (wall) is the fault's `times.notice_end_at` and the interruption notice's its
`times.notice_at`, so `node-drained` can judge "drained before the instance went", which is the whole point of a
spot handler, and `recovery-time` counts from the interruption.
"""
from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kubernetes import client
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.fis import (TOKEN_TAG, create_template, fis_role_arn, fis_stop_conditions, grouped_action,
                                stop_fis_owed, stops_on, template_token)
from harness.faults.selection import NODEGROUP, ZONE, instance_id_of
from harness.strict.params import FaultParams, NodeSelector
from harness.strict.units import Duration

SPOT_ACTION = "aws:ec2:send-spot-instance-interruptions"
CAPACITY_TYPE = "eks.amazonaws.com/capacityType"
TAG_KEY = "g7chaos:fault"
NOTICE_WORDS = ("spot", "interrupt", "termination", "rebalance")
ITN_LEAD_S = 120.0     # the interruption notice comes this long (deployment time) before the interruption


# ------------------------------------------------------------------------------------------- FIS helpers
def iso8601_duration(seconds: float) -> str:
    """FIS durations: PT2M, PT2M30S, PT15M (whole seconds; FIS has no sub-second resolution)."""
    total = int(round(seconds))
    minutes, secs = divmod(total, 60)
    return "PT" + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs or not minutes else "")


# ----------------------------------------------------------------------------------------- selection
def spot_nodes(target: Any, selector: Any) -> list[tuple[NodeRef, Any]]:
    """Schedulable, Ready spot nodes matching the selector, sorted so a seed picks the same one again."""
    contexts = [selector.cluster] if selector.cluster else target.contexts
    found: list[tuple[NodeRef, Any]] = []
    for context in contexts:
        core = client.CoreV1Api(target.kube(context))
        model_nodes: set[str] | None = None
        if selector.model:
            inference = target.spec.selectors.inference
            pods = core.list_namespaced_pod(inference.namespace,
                                            label_selector=f"{inference.label_selector},model={selector.model}").items
            model_nodes = {p.spec.node_name for p in pods if p.spec.node_name and not p.metadata.deletion_timestamp}
        for node in core.list_node().items:
            labels = node.metadata.labels or {}
            if labels.get(CAPACITY_TYPE) != "SPOT" or node.spec.unschedulable:
                continue
            if selector.zone and labels.get(ZONE) != selector.zone:
                continue
            if selector.nodegroup and labels.get(NODEGROUP) != selector.nodegroup:
                continue
            if model_nodes is not None and node.metadata.name not in model_nodes:
                continue
            if not any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
                continue
            ref = NodeRef(context=context, name=node.metadata.name, zone=labels.get(ZONE),
                          nodegroup=labels.get(NODEGROUP), instance_id=instance_id_of(node))
            found.append((ref, node))
    return sorted(found, key=lambda pair: (pair[0].context, pair[0].name))


class SpotInterruptionParams(FaultParams):
    """FIS `aws:ec2:send-spot-instance-interruptions` on the chosen spot instances.

    `notice` is FIS's durationBeforeInterruption: the time from the rebalance recommendation (sent at once) to
    the interruption; the interruption notice comes 2 minutes before the interruption. A notice longer than
    2m therefore always puts the recommendation first, and a scenario says so with `rebalance_first: true`."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    notice: Duration = Field(120.0, ge=120, le=900, description="durationBeforeInterruption (2m..15m): time from "
                             "the rebalance recommendation to the interruption; the interruption notice comes 2m "
                             "before the interruption")
    rebalance_first: bool = Field(False, description="the rebalance recommendation comes (notice - 2m) before the "
                                  "interruption notice; needs a notice longer than 2m")

    @field_validator("notice", mode="wrap")
    @classmethod
    def _notice_in_fis_range(cls, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if any(e["type"] in ("greater_than_equal", "less_than_equal") for e in exc.errors()):
                raise PydanticCustomError(
                    "spot_notice_range", "notice is FIS durationBeforeInterruption, which AWS accepts only from 2m "
                    "to 15m (PT2M..PT15M)") from None
            raise

    @model_validator(mode="after")
    def _rebalance_first_matches_notice(self) -> "SpotInterruptionParams":
        if self.rebalance_first and self.notice <= 120:
            raise ValueError("rebalance_first needs a notice longer than 2m: FIS sends the rebalance recommendation "
                             "at once and the interruption notice 2m before the interruption, so with notice: 2m "
                             "both come together")
        if not self.rebalance_first and self.notice > 120:
            raise ValueError(f"notice {self.notice:.0f}s is longer than 2m, so FIS sends the rebalance "
                             "recommendation (notice - 2m) before the interruption notice: set rebalance_first: "
                             "true to say so, or use notice: 2m")
        return self


@register
class SpotInterruption(Fault):
    name = "spot-interruption"
    params_model = SpotInterruptionParams
    params: SpotInterruptionParams
    MOMENT_LABELS = {**Fault.MOMENT_LABELS, "notice_at": "spot interruption notice",
                     "notice_end_at": "spot instance reclaimed (notice ran out)"}
    template_id: str | None = None
    experiment_id: str | None = None

    def plan(self) -> str:
        selector = self.params.node
        candidates = spot_nodes(self.ctx.target, selector)
        if len(candidates) < selector.count:
            raise FaultError(f"node selector {selector.model_dump(exclude_none=True)} matches {len(candidates)} "
                             f"schedulable Ready spot node(s) (label {CAPACITY_TYPE}=SPOT), {selector.count} needed")
        if selector.pick == "first":
            chosen = candidates[:selector.count]
        else:
            chooser = random.Random(selector.seed) if selector.seed is not None else self.ctx.rng
            chosen = chooser.sample(candidates, selector.count)
        missing = [ref.name for ref, _ in chosen if not ref.instance_id]
        if missing:
            raise FaultError(f"node(s) {', '.join(missing)} carry no aws:// providerID: no EC2 instance to interrupt")
        self.nodes = [ref for ref, _ in chosen]
        self._check_spot_lifecycle()
        self.role_arn = fis_role_arn(self.ctx.target)
        self.stop_conditions = fis_stop_conditions(self.ctx)
        timing = (f"rebalance recommendation at once, interruption notice after {self.params.notice - ITN_LEAD_S:.0f} s"
                  if self.params.rebalance_first else "rebalance recommendation and interruption notice at once")
        return (f"FIS {SPOT_ACTION} (durationBeforeInterruption {iso8601_duration(self.params.notice)}: {timing}, "
                f"interruption after {self.params.notice:.0f} s) on "
                f"{', '.join(f'{n.describe()} {n.instance_id}' for n in self.nodes)}, role {self.role_arn}"
                + stops_on(self.stop_conditions))

    def _check_spot_lifecycle(self) -> None:
        """FIS resolves `aws:ec2:spot-instance` targets only among spot instances: say so before starting."""
        ids = [n.instance_id for n in self.nodes]
        reservations = self.ctx.target.aws("ec2").describe_instances(InstanceIds=ids)["Reservations"]
        seen = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
        wrong = [f"{i} ({seen[i].get('InstanceLifecycle', 'on-demand')}, {seen[i]['State']['Name']})"
                 for i in ids if i in seen and (seen[i].get("InstanceLifecycle") != "spot"
                                                or seen[i]["State"]["Name"] != "running")]
        absent = [i for i in ids if i not in seen]
        if wrong or absent:
            raise FaultError(f"not running spot instances: {', '.join(wrong + absent)}")

    def _arns(self) -> list[str]:
        account = self.ctx.target.spec.aws.account_id or self.role_arn.split(":")[4]
        region = self.ctx.target.region
        return [f"arn:aws:ec2:{region}:{account}:instance/{n.instance_id}" for n in self.nodes]

    def inject(self) -> None:
        try:
            self._start()
        except (ClientError, BotoCoreError) as exc:
            raise FaultError(f"FIS refused the spot interruption experiment: {exc}") from exc

    def _start(self) -> None:
        fis = self.ctx.target.aws("fis")
        self.template_token = template_token()
        # the revert is on record before FIS holds anything of ours: recover finds the template by its token
        self.owe_revert(self._revert_args())
        targets: dict[str, Any] = {}
        actions: dict[str, Any] = {}
        grouped_action(targets, actions, target="SpotInstances", action="interrupt",
                       resource_type="aws:ec2:spot-instance", arns=self._arns(), action_id=SPOT_ACTION,
                       target_key="SpotInstances",
                       parameters={"durationBeforeInterruption": iso8601_duration(self.params.notice)})
        self.template_id = create_template(
            self.ctx.target, self.template_token,
            f"g7chaos spot-interruption of {', '.join(n.instance_id or '' for n in self.nodes)}",
            targets, actions, self.stop_conditions, tags={TAG_KEY: self.name}, role_arn=self.role_arn)
        started = self._started = time.time()
        experiment = fis.start_experiment(clientToken=self.template_token, experimentTemplateId=self.template_id,
                                          tags={TAG_KEY: self.name, TOKEN_TAG: self.template_token})["experiment"]
        self.experiment_id = experiment["id"]
        self._set_timeline(started)

    def _set_timeline(self, sent: float) -> None:
        """Wall times of the interruption notice and the interruption, counted from the action's start."""
        self.times.notice_end_at = sent + self.ctx.wall(self.params.notice)
        self.times.notice_at = sent + self.ctx.wall(self.params.notice - ITN_LEAD_S)

    def _revert_args(self) -> dict[str, Any]:
        return {"template_token": self.template_token, "instances": [n.instance_id for n in self.nodes]}

    def _experiment(self) -> dict[str, Any]:
        return self.ctx.target.aws("fis").get_experiment(id=self.experiment_id)["experiment"]

    def check_landed(self) -> dict[str, Any] | None:
        experiment = self._experiment()
        status = experiment["state"]["status"]
        action = (experiment.get("actions") or {}).get("interrupt", {})
        action_status = (action.get("state") or {}).get("status")
        if status == "failed" or action_status == "failed":
            raise FaultError(f"FIS experiment {self.experiment_id} failed: {experiment['state'].get('reason')}")
        if action_status not in ("running", "completed") and status != "completed":
            return None
        notices = {}
        for node in self.nodes:
            seen = self._notice_seen(node)
            if seen is None:
                return None
            notices[node.name] = seen
        start = action.get("startTime")
        signal = "rebalance-recommendation" if self.params.rebalance_first else "interruption-notice"
        return {"source": "fis+node", "signal": signal, "experiment": self.experiment_id, "experiment_status": status,
                "action_status": action_status, "action_started": str(start) if start else None,
                "action_started_at": start.timestamp() if hasattr(start, "timestamp") else None, "nodes": notices}

    def await_landed(self, deadline: float, poll_s: float = 0.1) -> dict[str, Any] | None:
        """The fault landed when FIS sent its first signal (the action's start), not when the harness saw the node
        react: a spot handler cordons within a second, and the drain must be judged from the signal itself."""
        evidence = super().await_landed(deadline, poll_s)
        sent = (evidence or {}).get("action_started_at")
        if evidence and sent is not None and self.landed_at is not None:
            floor = self.injected_at if self.injected_at is not None else self._started
            self.landed_at = min(self.landed_at, max(float(sent), floor))
            self._set_timeline(max(float(sent), self._started))
        return evidence

    def _notice_seen(self, node: NodeRef) -> dict[str, Any] | None:
        """What a real cluster shows of the notice: cordon, taint or Event on the node, or EC2 shutting it down."""
        core = client.CoreV1Api(self.ctx.target.kube(node.context))
        try:
            current = core.read_node(node.name)
        except client.ApiException as exc:
            if exc.status == 404:
                return {"via": "node-deleted"}
            raise
        if current.spec.unschedulable:
            return {"via": "cordoned"}
        for taint in current.spec.taints or []:
            if any(word in (taint.key or "").lower() for word in NOTICE_WORDS):
                return {"via": "taint", "taint": taint.key}
        events = core.list_event_for_all_namespaces(field_selector=f"involvedObject.name={node.name}").items
        for event in events:
            text = f"{event.reason or ''} {event.message or ''}".lower()
            if event.involved_object.kind == "Node" and any(word in text for word in NOTICE_WORDS):
                return {"via": "event", "reason": event.reason, "message": (event.message or "")[:200]}
        reservations = self.ctx.target.aws("ec2").describe_instances(InstanceIds=[node.instance_id])["Reservations"]
        for instance in (i for r in reservations for i in r["Instances"]):
            if instance["State"]["Name"] in ("shutting-down", "terminated"):
                return {"via": "ec2", "state": instance["State"]["Name"]}
        return None

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Stop the experiment (a notice already sent cannot be recalled: EC2 still reclaims the instance)."""
        stop_fis_owed(target, args)
