"""Every kind the twin serves parses into the official client's validated models."""
from __future__ import annotations

import json

import kubernetes
import pytest

from harness.twin.kube import objects as o
from harness.twin.kube.store import ObjectStore, resource

from conftest import NODE_A, populate


def roundtrip(obj: dict, model: str):
    return kubernetes.client.ApiClient().deserialize(json.dumps(obj), model, "application/json")


@pytest.fixture
def store() -> ObjectStore:
    s = ObjectStore("g7-use2a")
    populate(s)
    return s


KINDS = [("namespaces", "V1Namespace"), ("nodes", "V1Node"), ("pods", "V1Pod"),
         ("daemonsets.apps", "V1DaemonSet"), ("replicasets.apps", "V1ReplicaSet"),
         ("deployments.apps", "V1Deployment"), ("poddisruptionbudgets.policy", "V1PodDisruptionBudget")]


@pytest.mark.parametrize("res,model", KINDS)
def test_every_stored_kind_and_its_list_deserialize(store: ObjectStore, res: str, model: str) -> None:
    r = resource(res)
    items, rv = store.list(r)
    assert items
    for item in items:
        parsed = roundtrip(item, model)
        assert parsed.metadata.name == item["metadata"]["name"]
        assert parsed.kind == r.kind
    lst = roundtrip(o.list_of(r.api_version, r.kind, items, rv), f"{model}List")
    assert len(lst.items) == len(items) and lst.metadata.resource_version == str(rv)


def test_node_is_complete(store: ObjectStore) -> None:
    node = roundtrip(store.get(resource("nodes"), None, NODE_A), "V1Node")
    info = node.status.node_info
    assert all(getattr(info, f) for f in ("architecture", "boot_id", "container_runtime_version", "kernel_version",
                                          "kube_proxy_version", "kubelet_version", "machine_id", "operating_system",
                                          "os_image", "system_uuid"))
    assert node.spec.provider_id.startswith("aws:///us-east-2a/i-")
    assert node.status.allocatable["nvidia.com/gpu"] == "8" and node.status.capacity["vpc.amazonaws.com/efa"] == "4"
    assert {c.type for c in node.status.conditions} >= {"Ready", "AcceleratedHardwareReady"}
    assert node.metadata.labels["eks.amazonaws.com/capacityType"] == "SPOT"


def test_pod_has_controller_owner_and_gpu_resources(store: ObjectStore) -> None:
    pod = roundtrip(store.get(resource("pods"), "inference", "triton-13b-1"), "V1Pod")
    assert pod.metadata.owner_references[0].controller is True
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert pod.status.pod_ip and pod.status.host_ip and pod.spec.node_name == NODE_A
    assert pod.status.container_statuses[0].ready is True
    assert pod.metadata.annotations["twin.g7chaos.io/gpus"] == "0"


def test_events_both_shapes() -> None:
    node = o.node(NODE_A, instance_id="i-1", instance_type="g7.48xlarge", zone="us-east-2a", region="us-east-2",
                  nodegroup="ng", capacity_type="SPOT", private_ip="10.0.1.10", gpus=8)
    node["metadata"]["resourceVersion"] = "5"
    core = o.event(node, reason="NvidiaDoubleBitError", message="GPU 0 DBE", type_="Warning", namespace="default")
    parsed = roundtrip(core, "CoreV1Event")
    assert parsed.involved_object.name == NODE_A and parsed.type == "Warning"
    v1 = o.events_v1_event(node, reason="NvidiaDoubleBitError", note="GPU 0 DBE", type_="Warning", namespace="default")
    parsed_v1 = roundtrip(v1, "EventsV1Event")
    assert parsed_v1.regarding.name == NODE_A and parsed_v1.event_time is not None
    assert roundtrip(o.core_event_to_v1(core), "EventsV1Event").note == "GPU 0 DBE"
    assert roundtrip(o.v1_event_to_core(v1), "CoreV1Event").message == "GPU 0 DBE"
    assert roundtrip(o.list_of("v1", "Event", [core], 3), "CoreV1EventList").items[0].reason == "NvidiaDoubleBitError"
    assert roundtrip(o.list_of("events.k8s.io/v1", "Event", [v1], 3), "EventsV1EventList").items[0].note == "GPU 0 DBE"


def test_watch_event_objects_parse_like_the_client_watch_does(store: ObjectStore) -> None:
    """kubernetes.watch.Watch deserialises each event's object into the list's item type."""
    w = kubernetes.watch.Watch()
    pod = store.get(resource("pods"), "inference", "triton-13b-1")
    line = json.dumps({"type": "MODIFIED", "object": pod})
    ev = w.unmarshal_event(line, "V1Pod")
    assert ev["type"] == "MODIFIED" and ev["object"].metadata.name == "triton-13b-1"


def test_status_body_parses() -> None:
    st = roundtrip(o.status(429, "TooManyRequests", "no", causes=[{"reason": "DisruptionBudget", "message": "x"}]),
                   "V1Status")
    assert st.code == 429 and st.details.causes[0].reason == "DisruptionBudget"


def test_helpers_flip_conditions() -> None:
    node = o.node(NODE_A, instance_id="i-1", instance_type="g7.48xlarge", zone="us-east-2a", region="us-east-2",
                  nodegroup="ng", capacity_type="SPOT", private_ip="10.0.1.10", gpus=8)
    o.set_node_condition(node, "AcceleratedHardwareReady", "False", "NvidiaDoubleBitError", "DBE on GPU 0")
    cond = o.node_condition(node, "AcceleratedHardwareReady")
    assert cond["status"] == "False" and cond["reason"] == "NvidiaDoubleBitError"
    assert sum(1 for c in node["status"]["conditions"] if c["type"] == "AcceleratedHardwareReady") == 1
    pod = o.pod("p", "inference", containers=[o.container("c", "img", gpus=1)], node_name=NODE_A)
    assert o.pod_is_ready(pod)
    o.set_pod_ready(pod, False)
    assert not o.pod_is_ready(pod) and pod["status"]["containerStatuses"][0]["ready"] is False
    roundtrip(pod, "V1Pod")
    pending = o.pod("q", "inference", containers=[o.container("c", "img", gpus=1)], phase="Pending", ready=False)
    assert roundtrip(pending, "V1Pod").status.phase == "Pending"
