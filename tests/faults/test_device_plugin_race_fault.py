"""device-plugin-race against a twin in this process. With the article's ordering a reboot brings every GPU
back; with the plugin started before the driver the node comes back Ready with none (what the scenario's
check must catch); a plugin pod restarted on a running node registers every GPU under either profile."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client, watch
from faultkit import run_context
from support.polling import stays, wait_for

from harness.faults import FAULTS
from harness.faults.base import FaultError
from harness.faults.device_plugin_race import DevicePluginRaceParams
from harness.journal import owed_reverts
from harness.strict.params import NodeSelector
from harness.target.target import Target

pytestmark = pytest.mark.slow
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module", params=["article", "plugin-before-driver"])
def target(request, twin_pool) -> Target:
    handle = twin_pool.get(request.param, nodes_per_az=1, time_scale=30.0)   # each test leaves every GPU back
    return Target.from_twin_endpoints(Path(handle.twin.out_dir) / "endpoints.json")


def _node_state(core: client.CoreV1Api, name: str) -> tuple[str, str | None]:
    node = core.read_node(name)
    ready = next(c.status for c in node.status.conditions if c.type == "Ready")
    return ready, (node.status.allocatable or {}).get(GPU)


def _await_reboot(core: client.CoreV1Api, name: str, resource_version: str, seconds: float) -> None:
    """Follow the node through its reboot on a watch from before the injection: NotReady, then Ready again.

    Polling for Ready alone can read the node as it was before the reboot took it down (the `Rebooted`
    event that says the fault landed comes before the kubelet's status turns), and a poll can miss a short
    NotReady; a watch from the old resourceVersion sees every status the node went through."""
    deadline = time.time() + seconds
    went_down = False
    while time.time() < deadline:
        stream = watch.Watch().stream(core.list_node, field_selector=f"metadata.name={name}",
                                      resource_version=resource_version,
                                      timeout_seconds=max(1, int(deadline - time.time())))
        for event in stream:
            node = event["object"]
            resource_version = node.metadata.resource_version
            ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), None)
            went_down = went_down or ready != "True"
            if went_down and ready == "True":
                return
    raise AssertionError(f"node {name} down and Ready again within {seconds} s (went down: {went_down})")


def _fault(target: Target, tmp_path: Path, method: str, zone: str = "us-east-2b"):
    """The fault, once it can be planned: as a run's preflight waits for a steady fleet, the test waits for the
    zone to serve the model again (a test before may have rebooted its node, whose replicas then restart)."""
    ctx = run_context(target, tmp_path, seed=1)
    params = DevicePluginRaceParams(node=NodeSelector(zone=zone, model="llama-13b-fp8"), method=method)

    def planned():
        fault = FAULTS["device-plugin-race"](params, ctx)
        try:
            fault.plan()
        except FaultError:
            return None
        return fault
    return wait_for(planned, 30, f"a {zone} node serving llama-13b-fp8 to plan on"), ctx


def test_reboot_races_plugin_and_driver(target: Target, tmp_path: Path):
    fault, ctx = _fault(target, tmp_path, "reboot")
    assert "reboot-instances" in fault.plan()
    node = fault.nodes[0]
    core = client.CoreV1Api(target.kube(node.context))
    before = core.read_node(node.name).metadata.resource_version
    fault.inject()
    try:
        assert fault.await_landed(time.time() + 10)
        _await_reboot(core, node.name, before, 20)
        racy = "plugin-before-driver" in target.spec.description
        if racy:
            # Ready, and it stays without GPUs: the plugin registered before the driver and never retries
            stays(lambda: _node_state(core, node.name) == ("True", "0"), 2.0, "Ready with no GPU", interval=0.2)
        else:
            wait_for(lambda: _node_state(core, node.name) == ("True", "8"), 10, "all 8 GPUs allocatable again")
        (owed,) = owed_reverts(ctx.journal.path)
        assert owed.args["nodes"] == [{"context": node.context, "name": node.name, "gpus": 8}]
    finally:
        fault.revert()    # the tests after this one plan on the node: leave it whole even when this one fails
    assert owed_reverts(ctx.journal.path) == []
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []
    # the revert leaves the node as it was found: a fresh plugin pod registers against the loaded driver
    wait_for(lambda: _node_state(core, node.name) == ("True", "8"), 10, "every GPU back after the revert")


def test_a_plugin_restarted_on_a_running_node_registers_every_gpu(target: Target, tmp_path: Path):
    """Why `method: plugin-restart` is refused: outside a boot the driver is loaded, so a new plugin pod finds
    every GPU under either profile, gated on the driver or not (docs/FIDELITY.md PLUGIN-1)."""
    fault, _ = _fault(target, tmp_path, "reboot", zone="us-east-2a")
    fault.plan()
    node = fault.nodes[0]
    core = client.CoreV1Api(target.kube(node.context))
    plugin = target.spec.selectors.device_plugin
    old = [p.metadata.name for p in core.list_namespaced_pod(plugin.namespace, label_selector=plugin.label_selector,
                                                             field_selector=f"spec.nodeName={node.name}").items]
    assert len(old) == 1
    core.delete_namespaced_pod(old[0], plugin.namespace)
    wait_for(lambda: [p.metadata.name for p in core.list_namespaced_pod(
        plugin.namespace, label_selector=plugin.label_selector, field_selector=f"spec.nodeName={node.name}").items
        if p.status.phase == "Running"] not in ([], old), 10, "a new device-plugin pod running")
    wait_for(lambda: _node_state(core, node.name) == ("True", "8"), 10, "every GPU registered again")


def test_revert_during_the_reboot_still_brings_every_gpu_back(target: Target, tmp_path: Path):
    """What `g7chaos recover` meets after a run killed mid-fault: the node still booting. The revert waits for it
    and restarts a plugin that lost the race, instead of judging the node NotReady and leaving it short for good."""
    fault, ctx = _fault(target, tmp_path, "reboot")
    fault.plan()
    node = fault.nodes[0]
    fault.inject()
    core = client.CoreV1Api(target.kube(node.context))
    # mid-boot, as a recover right after the kill finds it (the boot keeps it NotReady ~3 s at this time scale)
    wait_for(lambda: _node_state(core, node.name)[0] != "True", 10, "the node going down for its reboot")
    FAULTS["device-plugin-race"].revert_owed(target, owed_reverts(ctx.journal.path)[0].args)
    assert _node_state(core, node.name) == ("True", "8")
