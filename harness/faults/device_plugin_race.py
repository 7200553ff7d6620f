"""device-plugin-race: make the NVIDIA device plugin and the driver race at start, as a reboot does.

Why a reboot: it is the everyday event that restarts both. A plugin that starts before the driver has loaded
finds no GPUs, registers zero `nvidia.com/gpu` and never retries; the node turns Ready and nothing else says
that its GPUs went missing (the article's "silent capacity loss"). `method: reboot` reboots the node through
FIS `aws:ec2:reboot-instances` with its explicit instance ARN. Restarting only the plugin is no way to race it:
on a running node the driver is loaded and a new plugin registers every GPU, gated or not, so the scenario
model refuses `method: plugin-restart` (docs/FIDELITY.md PLUGIN-1).

Landed: the node went NotReady / rebooted, as the Kubernetes API shows it.

Revert leaves the node as the harness found it: a node that came back Ready with fewer GPUs than it had before
gets its device-plugin pod deleted, so the DaemonSet starts a fresh one against the now-loaded driver (the
operator's fix for a lost race). Judgement is not affected: the run's checks have seen the loss by then.
The revert waits for that outcome (a node still rebooting, a plugin still registering) instead of judging
the node once: `g7chaos recover` after a killed run often finds the node mid-boot, and a node judged only
then would come back short of GPUs with nothing owed any more. A node not whole by the deadline keeps the
revert owed, so the next `recover` tries again.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Literal

from kubernetes import client
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from harness.faults.base import FaultError, register
from harness.faults.node_reboot import RebootFault
from harness.strict.params import FaultParams, NodeSelector

GPU = "nvidia.com/gpu"


class DevicePluginRaceParams(FaultParams):
    """Reboot the node (FIS aws:ec2:reboot-instances) so the device plugin and the driver race at start.

    `method: plugin-restart` is refused: a device plugin restarted on a running node finds the driver already
    loaded and registers every GPU, whether or not the deployment gates it on the driver, so that method would
    pass exactly the deployment this fault exists to catch (docs/FIDELITY.md PLUGIN-1)."""

    node: NodeSelector = Field(default_factory=NodeSelector)
    method: Literal["reboot"] = "reboot"

    @field_validator("method", mode="before")
    @classmethod
    def _no_plugin_restart(cls, value: Any) -> Any:
        if value == "plugin-restart":
            raise PydanticCustomError(
                "method_cannot_race",
                "method plugin-restart cannot reproduce the race: on a running node the driver is already loaded, "
                "so a restarted device plugin registers every GPU even where nothing gates it on the driver; use "
                "method: reboot (FIS aws:ec2:reboot-instances), which restarts both")
        return value


@register
class DevicePluginRace(RebootFault):
    name = "device-plugin-race"
    params_model = DevicePluginRaceParams
    params: DevicePluginRaceParams
    gpus_before: dict[str, int]     # node -> allocatable nvidia.com/gpu before the reboot: what the revert restores

    def plan(self) -> str:
        plan = self._plan_reboot()
        self.gpus_before = {}
        for node in self.nodes:
            current = client.CoreV1Api(self.ctx.target.kube(node.context)).read_node(node.name)
            self.gpus_before[node.name] = int((current.status.allocatable or {}).get(GPU, "0") or 0)
        return plan

    def inject(self) -> None:
        self._inject_reboot()

    def _revert_args(self) -> dict[str, Any]:
        plugin = self.ctx.target.spec.selectors.device_plugin
        fis = super()._revert_args() if self.template_token is not None else {}
        return {**fis, "plugin": {"namespace": plugin.namespace, "selector": plugin.label_selector},
                "nodes": [{"context": n.context, "name": n.name, "gpus": self.gpus_before.get(n.name, 0)}
                          for n in self.nodes]}

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        if "template_token" in args or "template_id" in args:
            super().revert_owed(target, args)
        deadline = time.time() + target.wall_seconds(NODE_BACK_S)
        for node in args.get("nodes", []):
            restore_gpus(target, node["context"], node["name"], node["gpus"], args["plugin"], deadline)


NODE_BACK_S = 600.0        # deployment seconds a rebooting node gets to come back with its GPUs
PLUGIN_GRACE_S = 30.0      # deployment seconds a running plugin gets to register before it counts as lost


def restore_gpus(target: Any, context: str, node: str, expected: int, plugin: dict[str, str],
                 deadline: float) -> None:
    """Wait until the node is Ready with `expected` GPUs; restart a plugin that ran PLUGIN_GRACE_S and still
    left the node short (it registered before the driver). FaultError at the deadline: the revert stays owed.

    A node that is gone (replaced) has nothing of ours left on it."""
    core = client.CoreV1Api(target.kube(context))
    grace = target.wall_seconds(PLUGIN_GRACE_S)
    seen: dict[str, float] = {}        # plugin pod uid -> when it was first seen running (local clock)
    wake = threading.Event()
    while True:
        try:
            current = core.read_node(node)
        except client.ApiException as exc:
            if exc.status == 404:
                return
            raise
        ready = any(c.type == "Ready" and c.status == "True" for c in current.status.conditions or [])
        gpus = int((current.status.allocatable or {}).get(GPU, "0") or 0)
        if ready and gpus >= expected:
            return
        now = time.time()
        if ready:
            for pod in core.list_namespaced_pod(plugin["namespace"], label_selector=plugin["selector"],
                                                field_selector=f"spec.nodeName={node}").items:
                if pod.metadata.deletion_timestamp or (pod.status.phase if pod.status else None) != "Running":
                    continue
                started = pod.status.start_time.timestamp() if pod.status.start_time else now
                if now - seen.setdefault(pod.metadata.uid, min(now, started)) < grace:
                    continue
                try:
                    core.delete_namespaced_pod(pod.metadata.name, plugin["namespace"])
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise
        if now >= deadline:
            state = f"has {gpus}/{expected} {GPU}" if ready else "is not Ready"
            raise FaultError(f"node {context}/{node} still {state}; run `g7chaos recover` again once it is back")
        wake.wait(min(0.2, max(0.0, deadline - now)))
