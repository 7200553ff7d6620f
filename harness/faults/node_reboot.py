"""node-reboot: reboot a node's instance through AWS FIS (`aws:ec2:reboot-instances`).

Why FIS and not `ec2 reboot-instances`: FIS is what a game day on AWS uses (IAM role, stop conditions, an
experiment record that says who did what), and an experiment can be stopped from a journal entry alone.
The FIS plumbing every FIS fault shares lives in harness/faults/fis.py; its names stay importable from here.
"""
from __future__ import annotations

import time
from typing import Any

from kubernetes import client
from pydantic import Field

from harness.faults.base import Fault, FaultError, register
from harness.faults.fis import (await_experiment_started, create_template, fis_stop_conditions, grouped_action,
                                instance_arn, start_experiment, stop_fis_owed, stops_on, template_token)
from harness.faults.selection import pick_nodes
from harness.strict.params import FaultParams, NodeSelector

REBOOT_ACTION = "aws:ec2:reboot-instances"

# ------------------------------------------------------------------------------------------- the fault


def node_rebooted_since(target: Any, context: str, node: str, since: float) -> dict[str, Any] | None:
    """Evidence a real cluster gives that a node went down and came back (or is coming): Ready went away, or
    the kubelet's `Rebooted` event, after `since`."""
    core = client.CoreV1Api(target.kube(context))
    try:
        current = core.read_node(node)
    except client.ApiException as exc:
        return {"source": "node-gone", "node": node} if exc.status == 404 else None
    for condition in current.status.conditions or []:
        if condition.type == "Ready" and condition.status != "True":
            return {"source": "node-condition", "node": node, "ready": condition.status, "reason": condition.reason}
    try:
        events = core.list_event_for_all_namespaces(field_selector=f"involvedObject.name={node}").items
    except client.ApiException:
        events = []
    for event in events:
        if event.involved_object is None or event.involved_object.name != node:
            continue
        stamp = event.last_timestamp or event.event_time or event.first_timestamp
        if event.reason in ("Rebooted", "NodeNotReady") and stamp is not None and stamp.timestamp() >= since - 1:
            return {"source": "event", "node": node, "reason": event.reason, "message": event.message}
    return None


class RebootFault(Fault):
    """Shared by node-reboot and device-plugin-race: one FIS experiment rebooting the chosen nodes."""

    instance_arns: list[str]               # the chosen nodes' instances (plan)
    stop_conditions: list[dict[str, str]]
    template_token: str | None = None      # names the experiment template, for the revert (inject)
    template_id: str | None = None
    experiment_id: str | None = None
    started_at: float                      # when the reboot was asked for: landing evidence must be newer

    def _plan_reboot(self) -> str:
        self.nodes = pick_nodes(self.ctx.target, self.params.node, self.ctx.rng)
        missing = [n.name for n in self.nodes if not n.instance_id]
        if missing:
            raise FaultError(f"node(s) {', '.join(missing)} carry no aws:/// providerID: cannot reboot through FIS")
        arns = [instance_arn(self.ctx.target, n.instance_id) for n in self.nodes]
        self.instance_arns = arns
        self.stop_conditions = fis_stop_conditions(self.ctx)
        return (f"FIS {REBOOT_ACTION} on {', '.join(n.describe() for n in self.nodes)} ({', '.join(arns)})"
                + stops_on(self.stop_conditions))

    def _inject_reboot(self) -> None:
        arns = self.instance_arns
        self.template_token = template_token()
        self.owe_revert(self._revert_args())
        targets: dict[str, Any] = {}
        actions: dict[str, Any] = {}
        grouped_action(targets, actions, target="nodes", action="reboot", resource_type="aws:ec2:instance",
                       arns=arns, action_id=REBOOT_ACTION, target_key="Instances")
        template_id = create_template(
            self.ctx.target, self.template_token,
            f"g7chaos {self.name}: reboot {', '.join(n.name for n in self.nodes)}", targets, actions,
            self.stop_conditions)
        self.template_id = template_id
        self.started_at = time.time()
        experiment_id = start_experiment(self.ctx.target, template_id, token=self.template_token)
        self.experiment_id = experiment_id
        await_experiment_started(self.ctx.target, experiment_id, time.time() + 10)

    def check_landed(self) -> dict[str, Any] | None:
        seen = {}
        for node in self.nodes:
            evidence = node_rebooted_since(self.ctx.target, node.context, node.name, self.started_at)
            if evidence is None:
                return None
            seen[node.name] = evidence
        return {"experiment": self.experiment_id, "nodes": seen}

    def _revert_args(self) -> dict[str, Any]:
        """Everything the revert needs, from the journal alone (written before the template exists)."""
        return {"template_token": self.template_token}

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """A reboot cannot be undone; what is owed is that no experiment of ours is left running."""
        stop_fis_owed(target, args)


class NodeRebootParams(FaultParams):
    """FIS `aws:ec2:reboot-instances` on the chosen node's instance."""

    node: NodeSelector = Field(default_factory=NodeSelector)


@register
class NodeReboot(RebootFault):
    name = "node-reboot"
    params_model = NodeRebootParams
    params: NodeRebootParams

    def plan(self) -> str:
        return self._plan_reboot()

    def inject(self) -> None:
        self._inject_reboot()
