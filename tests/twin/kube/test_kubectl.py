"""Real kubectl (the binary on PATH, fresh HOME per test) against the twin's Kubernetes API."""
from __future__ import annotations

import threading
import time

import pytest

from harness.twin.kube import objects as o
from harness.twin.kube.store import resource

from conftest import NODE_A, NODE_B, Fleet
from support.polling import wait_for

pytestmark = pytest.mark.kubectl
PODS = resource("pods")


def _dcgm_pod(fleet: Fleet, node: str) -> str:
    pods, _ = fleet.store.list(PODS, "kube-system",
                               lambda p: p["spec"].get("nodeName") == node and p["metadata"]["labels"].get("k8s-app") == "dcgm-server")
    return pods[0]["metadata"]["name"]


def test_get_nodes_shows_status_and_instance_type_label(fleet: Fleet) -> None:
    out = fleet.kubectl("get", "nodes", "-L", "node.kubernetes.io/instance-type").stdout
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INSTANCE-TYPE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {NODE_A, NODE_B}
    assert rows[NODE_A][1] == "Ready" and rows[NODE_A][-1] == "g7.48xlarge"


def test_cordon_shows_scheduling_disabled_and_uncordon_restores(fleet: Fleet) -> None:
    assert "cordoned" in fleet.kubectl("cordon", NODE_A).stdout
    assert fleet.store.get(resource("nodes"), None, NODE_A)["spec"]["unschedulable"] is True
    rows = {line.split()[0]: line.split()[1] for line in fleet.kubectl("get", "nodes").stdout.splitlines()[1:]}
    assert rows == {NODE_A: "Ready,SchedulingDisabled", NODE_B: "Ready"}
    fleet.kubectl("uncordon", NODE_A)
    assert not fleet.store.get(resource("nodes"), None, NODE_A)["spec"].get("unschedulable")


def test_get_pods_shows_not_ready_and_wide_columns(fleet: Fleet) -> None:
    fleet.store.mutate(PODS, "inference", "triton-13b-3", lambda p: o.set_pod_ready(p, False))
    out = fleet.kubectl("get", "pods", "-n", "inference", "-o", "wide").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["triton-13b-3"][1:3] == ["0/1", "Running"]
    assert rows["triton-13b-1"][1:3] == ["1/1", "Running"]
    assert rows["triton-13b-1"][5:7] == ["10.0.9.1", NODE_A]


def test_drain_evicts_only_its_node_and_waits_for_the_budget(fleet: Fleet) -> None:
    """maxUnavailable 1: the second pod of the node is refused (429) until a replacement is Ready elsewhere."""
    proc = fleet.popen("drain", NODE_A, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=45s")

    def one_left_standing() -> bool:
        """One triton pod of NODE_A is gone and the other is still there (the budget holds it)."""
        left = [p for p in fleet.store.list(PODS, "inference")[0] if p["spec"].get("nodeName") == NODE_A]
        return len(left) == 1 and not left[0]["metadata"].get("deletionTimestamp")

    try:
        wait_for(one_left_standing, 20, "the first eviction", interval=0.1)
    except AssertionError:
        proc.kill()
        pytest.fail(f"first eviction never completed: {proc.communicate()}")
    time.sleep(1.0)   # kubectl has been refused at least once by now; the pod must still stand
    assert len([p for p in fleet.store.list(PODS, "inference")[0] if p["spec"].get("nodeName") == NODE_A]) == 1
    # what the Deployment controller would do: a replacement pod, Ready, on the other node
    rs = fleet.store.list(resource("replicasets.apps"), "inference")[0][0]
    fleet.store.create(PODS, o.pod_for(rs, "triton-13b-5", node_name=NODE_B, pod_ip="10.0.9.5", host_ip="10.0.2.20"))
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, out + err
    assert "Cannot evict pod as it would violate the pod's disruption budget" in err
    assert f"node/{NODE_A} drained" in out
    pods = fleet.store.list(PODS)[0]
    on_a = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == NODE_A]
    assert sorted(n.split("-")[0] for n in on_a) == ["dcgm", "nvidia"]          # DaemonSet pods stay
    on_b = sorted(p["metadata"]["name"] for p in pods if p["metadata"]["namespace"] == "inference")
    assert on_b == ["triton-13b-3", "triton-13b-4", "triton-13b-5"]              # the other node is untouched
    assert fleet.store.get(resource("nodes"), None, NODE_A)["spec"]["unschedulable"] is True
    assert all(m.actor == "eviction" for m in fleet.store.mutations if m.verb == "delete" and m.resource == "pods")


def test_get_pods_all_namespaces_watch_streams_changes(fleet: Fleet) -> None:
    proc = fleet.popen("get", "pods", "-A", "-w", "--request-timeout=0")

    def change() -> None:
        time.sleep(1.5)
        fleet.store.mutate(PODS, "inference", "triton-13b-4", lambda p: o.set_pod_ready(p, False))
    t = threading.Thread(target=change)
    t.start()
    try:
        out, err = proc.communicate(timeout=4)
    except Exception:
        proc.terminate()
        out, err = proc.communicate(timeout=5)
    t.join()
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:3] == ["NAMESPACE", "NAME", "READY"]
    initial = [line for line in lines[1:] if line[1] == "triton-13b-4"]
    assert initial[0][2] == "1/1" and initial[-1][2] == "0/1", out + err
    assert sum(1 for line in lines[1:] if line[1] == "triton-13b-1") == 1   # listed once, not repeated by the watch


def test_exec_prints_handler_output_and_exit_code(fleet: Fleet) -> None:
    pod = _dcgm_pod(fleet, NODE_A)
    p = fleet.kubectl("exec", "-n", "kube-system", pod, "--", "dcgmi", "test", "--inject", "--gpuid", "0",
                      "-f", "319", "-v", "1")
    assert p.stdout == "Successfully injected field info.\n"
    assert fleet.exec_calls[-1] == ("kube-system", pod, "dcgm-server", ["dcgmi", "test", "--inject", "--gpuid", "0", "-f", "319", "-v", "1"])
    failed = fleet.kubectl("exec", "-n", "kube-system", pod, "-c", "dcgm-server", "--", "fail", check=False)
    assert failed.returncode == 3 and failed.stdout == "partial\n" and "boom" in failed.stderr
    assert fleet.exec_calls[-1][2] == "dcgm-server"
    missing = fleet.kubectl("exec", "-n", "kube-system", "no-such-pod", "--", "true", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_label_annotate_taint_and_delete(fleet: Fleet) -> None:
    fleet.kubectl("label", "node", NODE_B, "g7chaos/test=yes")
    fleet.kubectl("annotate", "pod", "-n", "inference", "triton-13b-3", "note=hi")
    fleet.kubectl("taint", "node", NODE_B, "nvidia.com/gpu=true:NoSchedule")
    node = fleet.store.get(resource("nodes"), None, NODE_B)
    assert node["metadata"]["labels"]["g7chaos/test"] == "yes"
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert fleet.store.get(PODS, "inference", "triton-13b-3")["metadata"]["annotations"]["note"] == "hi"
    out = fleet.kubectl("get", "nodes", "-l", "g7chaos/test=yes", "-o", "name").stdout.split()
    assert out == [f"node/{NODE_B}"]
    fleet.kubectl("label", "node", NODE_B, "g7chaos/test-")
    assert "g7chaos/test" not in fleet.store.get(resource("nodes"), None, NODE_B)["metadata"]["labels"]
    fleet.kubectl("delete", "pod", "-n", "inference", "triton-13b-3", "--timeout=10s")
    assert fleet.store.get(PODS, "inference", "triton-13b-3") is None


def test_server_dry_runs_touch_nothing(fleet: Fleet) -> None:
    """`--dry-run=server` reaches the API (cordon patch, evictions, deletes) and must not change a thing."""
    before = len(fleet.store.mutations)
    out = fleet.kubectl("drain", NODE_A, "--ignore-daemonsets", "--dry-run=server", "--timeout=20s").stdout
    assert "drained (server dry run)" in out and "evicting pod inference/triton-13b-1 (server dry run)" in out
    fleet.kubectl("delete", "pod", "-n", "inference", "triton-13b-3", "--dry-run=server")
    fleet.kubectl("label", "node", NODE_B, "x=y", "--dry-run=server")
    assert fleet.store.mutations[before:] == []
    assert not fleet.store.get(resource("nodes"), None, NODE_A)["spec"].get("unschedulable")
