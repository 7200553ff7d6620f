"""replica-stall `mode: io` against one twin in this process: AWS FIS on the EBS volumes of the serving nodes.

Latency (aws:ebs:volume-io-latency) makes every request wait its read while the GPU idles (DCGM utilisation
reads low); a pause (aws:ebs:pause-volume-io) stops requests until the revert. Each revert, from the fault or
from the journal alone, leaves no FIS experiment running and no volume slow.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from harness.faults import FAULTS, RunContext
from harness.faults.replica_stall import ReplicaStallParams
from harness.journal import Journal, owed_reverts
from harness.observe import Timeline
from harness.target.target import Target
from harness.twin.server import TwinHandle, TwinServer
from harness.twin.world import DCGM_FI_DEV_GPU_UTIL
from support.polling import wait_for

pytestmark = pytest.mark.slow

ACTIVE = ("pending", "initiating", "running", "stopping")


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinHandle]:
    out = tmp_path_factory.mktemp("io-twin")
    handle = TwinServer.start_in_thread(profile="article", nodes_per_az=1, time_scale=30.0, out_dir=out / "twin")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture()
def target(twin: TwinHandle) -> Target:
    return Target.from_twin_endpoints(Path(twin.twin.out_dir) / "endpoints.json")


def _ctx(target: Target, tmp_path: Path) -> RunContext:
    return RunContext(target=target, journal=Journal(tmp_path / "journal.jsonl"), timeline=Timeline(),
                      rng=random.Random(5))


def _ttft(twin: TwinHandle, timeout: float = 5.0) -> float:
    """Seconds to the first streamed token of one small request through the gateway."""
    start = time.monotonic()
    with httpx.stream("POST", f"{twin.twin.world.serving_url}/v1/completions", timeout=timeout,
                      json={"model": "llama-13b-fp8", "prompt": "io stall probe", "max_tokens": 2, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                return time.monotonic() - start
    raise AssertionError("no token streamed")


def _running_experiments(target: Target) -> list[str]:
    return [e["id"] for e in target.aws("fis").list_experiments()["experiments"] if e["state"]["status"] in ACTIVE]


def _left_clean(target: Target, twin: TwinHandle) -> None:
    """stop_experiment answers at once; FIS (and the twin) end the action a moment later."""
    wait_for(lambda: _running_experiments(target) == [], 5, "no FIS experiment left running")
    wait_for(lambda: twin.call(lambda: dict(twin.world.io_latency_s)) == {}, 5, "no volume left slow")


def test_io_latency_slows_every_serving_node_and_its_revert_leaves_nothing_running(target: Target, twin: TwinHandle,
                                                                                   tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["replica-stall"](ReplicaStallParams(model="llama-13b-fp8", count="all", mode="io",
                                                       io_latency=0.4), ctx)
    plan = fault.plan()
    assert "aws:ebs:volume-io-latency" in plan and "+400 ms" in plan
    serving_nodes = {n.name for n in twin.world.nodes.values() if n.role == "13b"}
    assert {n.name for n in fault.nodes} == serving_nodes and len(fault.volume_arns) == len(serving_nodes)
    assert _ttft(twin) < 0.3

    fault.inject()
    evidence = fault.await_landed(time.time() + 5)
    assert evidence and evidence["action"] == "aws:ebs:volume-io-latency", evidence
    assert set(evidence["nodes"]) == serving_nodes and evidence["gpu_utilisation"], evidence
    assert twin.call(lambda: dict(twin.world.io_latency_s)) == {n: 0.4 for n in serving_nodes}
    assert [o.fault for o in owed_reverts(ctx.journal.path)] == ["replica-stall"]
    assert _ttft(twin) >= 0.4, "the request waited its read on the slow volume"
    node = twin.world.nodes[sorted(serving_nodes)[0]]
    assert max(g.fields[DCGM_FI_DEV_GPU_UTIL] for g in node.gpus) < 50, "GPUs idle while requests wait on I/O"

    fault.revert()
    assert owed_reverts(ctx.journal.path) == []
    _left_clean(target, twin)
    assert _ttft(twin) < 0.3
    fault.revert()      # idempotent


def test_io_pause_holds_requests_until_recover_stops_the_experiment(target: Target, twin: TwinHandle, tmp_path: Path):
    ctx = _ctx(target, tmp_path)
    fault = FAULTS["replica-stall"](ReplicaStallParams(model="llama-13b-fp8", count="all", mode="io",
                                                       io_action="pause"), ctx)
    assert "aws:ebs:pause-volume-io" in fault.plan()
    fault.inject()
    assert fault.await_landed(time.time() + 5)["action"] == "aws:ebs:pause-volume-io"
    with pytest.raises(httpx.ReadTimeout):
        _ttft(twin, timeout=0.5)

    (owed,) = owed_reverts(ctx.journal.path)        # a crashed run: recover works from the journal entry alone
    FAULTS[owed.fault].revert_owed(target, owed.args)
    _left_clean(target, twin)
    assert _ttft(twin) < 0.3


def test_count_all_over_more_than_five_volumes_goes_in_targets_of_five_per_zone(target: Target, twin: TwinHandle,
                                                                               tmp_path: Path):
    """`count: all` used to put every volume in one target, which FIS rejects beyond 5 ARNs (and EBS actions
    want one target's volumes in one zone): with 6 volumes per serving node, the template has targets of at most
    5 volumes of one zone each, the twin accepts it, and every volume is slowed."""
    ec2 = target.aws("ec2")
    serving = [n for n in twin.world.nodes.values() if n.role == "13b"]
    attached: list[dict[str, str]] = []
    try:
        for node in serving:
            for device in "fghij":
                volume = ec2.create_volume(AvailabilityZone=node.az, Size=10)["VolumeId"]
                attached.append({"VolumeId": volume, "InstanceId": node.instance_id, "Device": f"/dev/sd{device}"})
                ec2.attach_volume(**attached[-1])
        extra = [a["VolumeId"] for a in attached]
        ctx = _ctx(target, tmp_path)
        fault = FAULTS["replica-stall"](ReplicaStallParams(model="llama-13b-fp8", count="all", mode="io",
                                                           io_latency=0.4), ctx)
        fault.plan()
        assert len(fault.volume_arns) == 6 * len(serving) and set(extra) <= set(fault.volumes)
        fault.inject()
        template = target.aws("fis").get_experiment_template(id=fault.template_id)["experimentTemplate"]
        zone_of = {v["VolumeId"]: v["AvailabilityZone"] for v in ec2.describe_volumes()["Volumes"]}
        groups = [t["resourceArns"] for t in template["targets"].values()]
        assert all(len(g) <= 5 for g in groups) and len(groups) == 2 * len(serving), groups
        assert all(len({zone_of[a.rsplit("/", 1)[-1]] for a in g}) == 1 for g in groups), groups
        evidence = fault.await_landed(time.time() + 5)
        assert evidence and set(evidence["volumes"]) == set(fault.volumes), evidence
        fault.revert()
        _left_clean(target, twin)
    finally:
        for attachment in attached:
            ec2.detach_volume(**attachment)
            ec2.delete_volume(VolumeId=attachment["VolumeId"])
