"""device-plugin-race against a twin in this process. With the article's ordering a reboot brings every GPU
back; with the plugin started before the driver the node comes back Ready with none (what the scenario's
check must catch); deleting the plugin pod drops the node's GPUs until the DaemonSet's new pod registers."""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from harness.faults import FAULTS, RunContext
from harness.journal import Journal, owed_reverts
from harness.observe import Timeline
from harness.scenario.model import DevicePluginRaceParams, NodeSelector
from harness.target.target import Target
from harness.twin.server import TwinServer

pytestmark = pytest.mark.slow
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module", params=["article", "plugin-before-driver"])
def target(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    out = tmp_path_factory.mktemp(f"plugin-{request.param}")
    handle = TwinServer.start_in_thread(profile=request.param, nodes_per_az=1, time_scale=30.0, out_dir=out / "twin")
    try:
        yield Target.from_twin_endpoints(Path(handle.twin.out_dir) / "endpoints.json")
    finally:
        handle.stop()


def _until(predicate, seconds: float, what: str):
    try:
        return Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(0.1), retry=retry_if_result(lambda v: not v),
                        reraise=True)(predicate)
    except Exception as exc:
        raise AssertionError(f"{what} within {seconds} s") from exc


def _node_state(core: client.CoreV1Api, name: str) -> tuple[str, str | None]:
    node = core.read_node(name)
    ready = next(c.status for c in node.status.conditions if c.type == "Ready")
    return ready, (node.status.allocatable or {}).get(GPU)


def _fault(target: Target, tmp_path: Path, method: str, zone: str = "us-east-2b"):
    ctx = RunContext(target=target, journal=Journal(tmp_path / "journal.jsonl"), timeline=Timeline(),
                     rng=random.Random(1))
    params = DevicePluginRaceParams(node=NodeSelector(zone=zone, model="llama-13b-fp8"), method=method)
    return FAULTS["device-plugin-race"](params, ctx), ctx


def test_reboot_races_plugin_and_driver(target: Target, tmp_path: Path):
    fault, ctx = _fault(target, tmp_path, "reboot")
    assert "reboot-instances" in fault.plan()
    node = fault.nodes[0]
    fault.inject()
    assert fault.await_landed(time.time() + 10)
    core = client.CoreV1Api(target.kube(node.context))
    _until(lambda: _node_state(core, node.name)[0] == "True", 20, "the node Ready after its boot")
    racy = "plugin-before-driver" in target.spec.description
    if racy:
        # Ready, and it stays without GPUs: the plugin registered before the driver and never retries
        deadline = time.time() + 2.0
        while time.time() < deadline:
            assert _node_state(core, node.name) == ("True", "0")
            time.sleep(0.2)
    else:
        _until(lambda: _node_state(core, node.name) == ("True", "8"), 10, "all 8 GPUs allocatable again")
    (owed,) = owed_reverts(ctx.journal.path)
    assert owed.args["nodes"] == [{"context": node.context, "name": node.name, "gpus": 8}]
    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    assert target.aws("fis").list_experiment_templates()["experimentTemplates"] == []
    # the revert leaves the node as it was found: a fresh plugin pod registers against the loaded driver
    _until(lambda: _node_state(core, node.name) == ("True", "8"), 10, "every GPU back after the revert")


def test_plugin_restart_drops_and_restores_the_gpus(target: Target, tmp_path: Path):
    # outside a boot the driver is loaded, so a new plugin pod finds every GPU under either profile
    fault, ctx = _fault(target, tmp_path, "plugin-restart", zone="us-east-2a")
    fault.plan()
    node = fault.nodes[0]
    old = fault.extra["plugin_pods"][node.name]
    fault.inject()
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and evidence["nodes"][node.name]["plugin_pod_replaced"] or \
        evidence["nodes"][node.name]["allocatable_gpus"] == "0"
    core = client.CoreV1Api(target.kube(node.context))
    plugin = target.spec.selectors.device_plugin
    _until(lambda: [p.metadata.name for p in core.list_namespaced_pod(
        plugin.namespace, label_selector=plugin.label_selector, field_selector=f"spec.nodeName={node.name}").items
        if p.status.phase == "Running"] not in ([], [old]), 10, "a new device-plugin pod running")
    _until(lambda: _node_state(core, node.name) == ("True", "8"), 10, "the GPUs registered again")
    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
