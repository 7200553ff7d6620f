"""The official Python client (kubernetes 37) and plain HTTP against the twin's Kubernetes API."""
from __future__ import annotations

import json
import threading
import time

import httpx
import kubernetes
import pytest
from kubernetes.client import ApiException, AppsV1Api, CoreV1Api, EventsV1Api, PolicyV1Api
from kubernetes.stream import stream

from harness.twin.kube import objects as o
from harness.twin.kube.api import build_kube_app
from harness.twin.kube.store import ObjectStore, resource
from harness.twin.kube.testing import serve_in_thread

from conftest import NODE_A, NODE_B, Fleet, populate
from support.polling import wait_for

PODS = resource("pods")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_discovery_and_version(fleet: Fleet) -> None:
    v = httpx.get(f"{fleet.url}/version")
    assert v.headers["cache-control"] == "no-store" and v.json()["minor"] == "32"
    core = httpx.get(f"{fleet.url}/api/v1").json()
    assert core["groupVersion"] == "v1"
    ev = next(r for r in core["resources"] if r["name"] == "pods/eviction")
    assert (ev["group"], ev["version"], ev["kind"]) == ("policy", "v1", "Eviction")
    assert {"pods/exec", "pods/proxy", "pods/status", "nodes/status"} <= {r["name"] for r in core["resources"]}
    groups = {g["name"] for g in httpx.get(f"{fleet.url}/apis").json()["groups"]}
    assert groups == {"apps", "policy", "events.k8s.io"}
    for gv in ("apps/v1", "policy/v1", "events.k8s.io/v1"):
        assert httpx.get(f"{fleet.url}/apis/{gv}").json()["groupVersion"] == gv
    assert httpx.get(f"{fleet.url}/apis/batch/v1").status_code == 404


def test_list_with_field_and_label_selectors(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        on_a = v1.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE_A}")
        assert {p.spec.node_name for p in on_a.items} == {NODE_A} and len(on_a.items) == 4
        assert int(on_a.metadata.resource_version) == fleet.store.resource_version
        names = lambda **kw: sorted(p.metadata.name for p in v1.list_namespaced_pod("inference", **kw).items)  # noqa: E731
        assert names(label_selector="app=triton,model in (llama-13b-fp8, x)") == [f"triton-13b-{i}" for i in range(1, 5)]
        assert names(label_selector="app!=triton") == []
        assert names(label_selector="model notin (llama-13b-fp8)") == []
        assert names(label_selector="!app") == []
        assert len(names(label_selector="pod-template-hash")) == 4
        dcgm = v1.list_namespaced_pod("kube-system", label_selector="k8s-app=dcgm-server",
                                      field_selector=f"spec.nodeName={NODE_B},status.phase=Running")
        assert len(dcgm.items) == 1 and dcgm.items[0].spec.node_name == NODE_B
        assert len(v1.list_node(field_selector="spec.unschedulable=false").items) == 2
        assert v1.list_node(label_selector="topology.kubernetes.io/zone==us-east-2b").items[0].metadata.name == NODE_B
        with pytest.raises(ApiException) as bad:
            v1.list_node(label_selector="a in (b")
        assert bad.value.status == 400


def test_watch_resumes_from_resource_version(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        rv = v1.list_namespaced_pod("inference").metadata.resource_version
        fleet.store.mutate(PODS, "inference", "triton-13b-2", lambda p: o.set_pod_ready(p, False))
        fleet.store.mutate(resource("nodes"), None, NODE_A, lambda n: n["spec"].update(unschedulable=True))
        seen = []
        w = kubernetes.watch.Watch()
        for ev in w.stream(v1.list_namespaced_pod, "inference", resource_version=rv, timeout_seconds=1):
            seen.append((ev["type"], ev["object"].metadata.name, ev["object"].status.container_statuses[0].ready))
        assert seen == [("MODIFIED", "triton-13b-2", False)]          # only what happened after rv, only pods
        # without a resourceVersion a watch starts with the current state as ADDED events
        first = []
        for ev in w.stream(v1.list_node, field_selector=f"metadata.name={NODE_B}", timeout_seconds=1):
            first.append((ev["type"], ev["object"].metadata.name))
        assert first == [("ADDED", NODE_B)]


def test_watch_live_events_and_selector_transitions(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        seen: list[tuple[str, str]] = []

        def change() -> None:
            time.sleep(0.5)
            fleet.store.mutate(PODS, "inference", "triton-13b-1", lambda p: p["metadata"]["labels"].update(app="gone"))
            fleet.store.create(PODS, o.pod("extra", "inference", containers=[o.container("c", "img")],
                                           labels={"app": "triton"}, node_name=NODE_B))
            fleet.store.mutate(PODS, "inference", "triton-13b-1", lambda p: p["metadata"]["labels"].update(app="triton"))
            fleet.store.mutate(PODS, "inference", "triton-13b-1", lambda p: o.set_pod_ready(p, False))
        t = threading.Thread(target=change)
        t.start()
        rv = v1.list_namespaced_pod("inference").metadata.resource_version
        for ev in kubernetes.watch.Watch().stream(v1.list_namespaced_pod, "inference", label_selector="app=triton",
                                                  resource_version=rv, timeout_seconds=2):
            seen.append((ev["type"], ev["object"].metadata.name))
        t.join()
        # leaving the selection is DELETED, entering it ADDED for this watcher, as the API server's watch cache does
        assert seen == [("DELETED", "triton-13b-1"), ("ADDED", "extra"), ("ADDED", "triton-13b-1"),
                        ("MODIFIED", "triton-13b-1")]


def test_watch_too_old_resource_version_is_410_gone(tmp_path) -> None:
    class SmallHistory(ObjectStore):
        HISTORY = 5
    store = SmallHistory("c")
    populate(store)
    url, stop = serve_in_thread(build_kube_app(store))
    try:
        r = httpx.get(f"{url}/api/v1/pods", params={"watch": "true", "resourceVersion": "2", "timeoutSeconds": "1"})
        event = json.loads(r.text.splitlines()[0])
        assert event["type"] == "ERROR" and event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        r2 = httpx.get(f"{url}/api/v1/watch/nodes", params={"resourceVersion": str(store.resource_version),
                                                             "timeoutSeconds": "0.3"})
        assert r2.status_code == 200 and r2.text == ""
    finally:
        stop()


def test_three_patch_types_and_status_subresource(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        v1.patch_node(NODE_A, {"spec": {"unschedulable": True}})        # the client sends strategic merge
        assert fleet.store.get(resource("nodes"), None, NODE_A)["spec"]["unschedulable"] is True
        v1.patch_node(NODE_A, {"metadata": {"labels": {"x": "1"}}}, _content_type="application/merge-patch+json")
        v1.patch_node(NODE_A, [{"op": "add", "path": "/metadata/annotations/y", "value": "2"}])
        node = fleet.store.get(resource("nodes"), None, NODE_A)
        assert node["metadata"]["labels"]["x"] == "1" and node["metadata"]["annotations"]["y"] == "2"
        # a condition patched through nodes/status merges by type, leaving the others alone
        v1.patch_node_status(NODE_A, {"status": {"conditions": [
            {"type": "AcceleratedHardwareReady", "status": "False", "reason": "NvidiaDoubleBitError", "message": "DBE"}]}})
        got = v1.read_node(NODE_A)
        conds = {c.type: c for c in got.status.conditions}
        assert conds["AcceleratedHardwareReady"].reason == "NvidiaDoubleBitError" and conds["Ready"].status == "True"
        # status sent to the main resource is ignored, as on a real API server
        v1.patch_node(NODE_A, {"status": {"phase": "Bogus"}})
        assert v1.read_node(NODE_A).status.phase == "Running"
        with pytest.raises(ApiException) as bad:
            v1.patch_node(NODE_A, [{"op": "remove", "path": "/metadata/nope/x"}])
        assert bad.value.status == 422


def test_errors_are_status_bodies(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        with pytest.raises(ApiException) as nf:
            v1.read_namespaced_pod("nope", "inference")
        body = json.loads(nf.value.body)
        assert nf.value.status == 404 and body["reason"] == "NotFound" and body["kind"] == "Status"
        pod = o.pod("dup", "inference", containers=[o.container("c", "img")])
        v1.create_namespaced_pod("inference", pod)
        with pytest.raises(ApiException) as dup:
            v1.create_namespaced_pod("inference", pod)
        assert dup.value.status == 409 and json.loads(dup.value.body)["reason"] == "AlreadyExists"
        current = v1.read_namespaced_pod("dup", "inference")
        v1.patch_namespaced_pod("dup", "inference", {"metadata": {"labels": {"bump": "1"}}})
        current.metadata.labels = {"stale": "1"}
        with pytest.raises(ApiException) as stale:
            v1.replace_namespaced_pod("dup", "inference", current)
        assert stale.value.status == 409 and json.loads(stale.value.body)["reason"] == "Conflict"
        r = httpx.post(f"{fleet.url}/api/v1/namespaces/inference/pods", json={"metadata": {}, "spec": {}})
        assert r.status_code == 422 and r.json()["reason"] == "Invalid"
        gen = v1.create_namespaced_pod("inference", {"metadata": {"generateName": "job-"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
        assert gen.metadata.name.startswith("job-") and gen.status.phase == "Pending"


def test_eviction_201_then_429_and_pdb_status(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1, policy = CoreV1Api(c), PolicyV1Api(c)
        wait_for(lambda: fleet.store.get(resource("poddisruptionbudgets.policy"), "inference", "triton-13b")
                 ["status"]["disruptionsAllowed"] == 1, 5, "initial PDB status")
        pdb = policy.read_namespaced_pod_disruption_budget("triton-13b", "inference")
        assert (pdb.status.current_healthy, pdb.status.desired_healthy, pdb.status.expected_pods) == (4, 3, 4)

        def evict(name: str):
            body = kubernetes.client.V1Eviction(metadata=kubernetes.client.V1ObjectMeta(name=name, namespace="inference"))
            return v1.create_namespaced_pod_eviction(name, "inference", body)
        evict("triton-13b-1")
        assert fleet.store.get(PODS, "inference", "triton-13b-1")["metadata"]["deletionTimestamp"]
        with pytest.raises(ApiException) as refused:
            evict("triton-13b-3")
        body = json.loads(refused.value.body)
        assert refused.value.status == 429 and body["reason"] == "TooManyRequests"
        assert "needs 3 healthy pods and has 3 currently" in body["details"]["causes"][0]["message"]
        assert fleet.store.get(PODS, "inference", "triton-13b-3")["metadata"].get("deletionTimestamp") is None
        wait_for(lambda: fleet.store.get(PODS, "inference", "triton-13b-1") is None, 5, "graceful deletion")
        assert policy.read_namespaced_pod_disruption_budget("triton-13b", "inference").status.disruptions_allowed == 0
        # a controller outside the API makes a new replica Ready: the budget opens again
        rs = fleet.store.list(resource("replicasets.apps"), "inference")[0][0]
        fleet.store.create(PODS, o.pod_for(rs, "triton-13b-9", node_name=NODE_B))
        wait_for(lambda: policy.read_namespaced_pod_disruption_budget("triton-13b", "inference").status
                 .disruptions_allowed == 1, 5, "PDB status follows pods")
        evict("triton-13b-3")
        with pytest.raises(ApiException) as missing:
            evict("nope")
        assert missing.value.status == 404
        # a DaemonSet pod has no budget: always evictable; dryRun touches nothing
        ds_pod = fleet.store.list(PODS, "kube-system")[0][0]["metadata"]["name"]
        r = httpx.post(f"{fleet.url}/api/v1/namespaces/kube-system/pods/{ds_pod}/eviction?dryRun=All",
                       json={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": ds_pod}})
        assert r.status_code == 201 and not fleet.store.get(PODS, "kube-system", ds_pod)["metadata"].get("deletionTimestamp")


def test_pod_deletion_is_graceful_and_cascades(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1, apps = CoreV1Api(c), AppsV1Api(c)
        deleted = v1.delete_namespaced_pod("triton-13b-4", "inference")
        assert deleted.metadata.deletion_timestamp is not None
        rows = httpx.get(f"{fleet.url}/api/v1/namespaces/inference/pods/triton-13b-4", headers={"Accept": TABLE}).json()["rows"]
        assert rows[0]["cells"][2] == "Terminating"
        wait_for(lambda: fleet.store.get(PODS, "inference", "triton-13b-4") is None, 5, "pod removal")
        v1.delete_namespaced_pod("triton-13b-3", "inference", grace_period_seconds=0)
        assert fleet.store.get(PODS, "inference", "triton-13b-3") is None
        # a pod bound to no node has no kubelet to confirm its exit: the API server removes it at once
        fleet.store.create(PODS, o.pod("unbound", "inference", containers=[o.container("c", "img")],
                                       labels={"app": "other"}))
        v1.delete_namespaced_pod("unbound", "inference")
        assert fleet.store.get(PODS, "inference", "unbound") is None
        apps.delete_namespaced_deployment("triton-13b", "inference")
        assert apps.list_namespaced_replica_set("inference").items == []
        wait_for(lambda: fleet.store.list(PODS, "inference")[0] == [], 5, "garbage collection of pods")


def test_exec_via_stream_and_proxy(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        pod = fleet.store.list(PODS, "kube-system", lambda p: p["metadata"]["labels"].get("k8s-app") == "dcgm-server")[0][0]
        name = pod["metadata"]["name"]
        ws = stream(v1.connect_get_namespaced_pod_exec, name, "kube-system",
                    command=["dcgmi", "test", "--inject", "--gpuid", "0", "-f", "319", "-v", "1"],
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        ws.run_forever(timeout=5)
        assert ws.returncode == 0            # read before read_all(), which empties every channel
        assert ws.read_all() == "Successfully injected field info.\n"
        ws = stream(v1.connect_get_namespaced_pod_exec, name, "kube-system", command=["fail"],
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        ws.run_forever(timeout=5)
        assert ws.returncode == 3
        out = stream(v1.connect_get_namespaced_pod_exec, name, "kube-system", command=["dcgmi", "discovery", "-l"],
                     stderr=True, stdin=False, stdout=True, tty=False)
        assert "Successfully injected" in out
        assert fleet.exec_calls[-1] == ("kube-system", name, None, ["dcgmi", "discovery", "-l"])
        text = v1.connect_get_namespaced_pod_proxy_with_path(f"{name}:9400", "kube-system", "metrics")
        assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in text
        assert fleet.proxy_calls[-1] == ("kube-system", name, 9400, "metrics")
        with pytest.raises(ApiException) as nf:
            v1.connect_get_namespaced_pod_proxy_with_path("ghost:9400", "kube-system", "metrics")
        assert nf.value.status == 404


def test_table_output_rows_carry_metadata(fleet: Fleet) -> None:
    fleet.store.mutate(resource("nodes"), None, NODE_B, lambda n: o.set_node_condition(n, "Ready", "False", "NodeStatusUnknown", "x"))
    t = httpx.get(f"{fleet.url}/api/v1/nodes", headers={"Accept": TABLE}).json()
    assert t["kind"] == "Table" and [c["name"] for c in t["columnDefinitions"][:5]] == ["Name", "Status", "Roles", "Age", "Version"]
    rows = {r["cells"][0]: r for r in t["rows"]}
    assert rows[NODE_B]["cells"][1] == "NotReady"
    assert rows[NODE_A]["object"]["kind"] == "PartialObjectMetadata"
    assert rows[NODE_A]["object"]["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "g7.48xlarge"
    for path in ("/apis/apps/v1/deployments", "/apis/apps/v1/daemonsets", "/apis/policy/v1/poddisruptionbudgets",
                 "/api/v1/namespaces", "/api/v1/events", "/apis/apps/v1/replicasets", "/api/v1/configmaps"):
        assert httpx.get(f"{fleet.url}{path}", headers={"Accept": TABLE}).json()["kind"] == "Table"
    dep = httpx.get(f"{fleet.url}/apis/apps/v1/deployments", headers={"Accept": TABLE}).json()["rows"][0]["cells"]
    assert dep[:2] == ["triton-13b", "4/4"]


def test_events_core_and_events_k8s_io(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1, ev1 = CoreV1Api(c), EventsV1Api(c)
        node = fleet.store.get(resource("nodes"), None, NODE_A)
        v1.create_namespaced_event("default", o.event(node, reason="NvidiaDoubleBitError", message="GPU 0", type_="Warning",
                                                      namespace="default"))
        ev1.create_namespaced_event("default", o.events_v1_event(node, reason="Cordoned", note="auto repair",
                                                                 namespace="default"))
        core = v1.list_namespaced_event("default", field_selector=f"involvedObject.name={NODE_A},type=Warning")
        assert [e.reason for e in core.items] == ["NvidiaDoubleBitError"]
        assert sorted(e.reason for e in v1.list_event_for_all_namespaces().items) == ["Cordoned", "NvidiaDoubleBitError"]
        new = ev1.list_namespaced_event("default")
        assert sorted((e.reason, e.regarding.name) for e in new.items) == [("Cordoned", NODE_A), ("NvidiaDoubleBitError", NODE_A)]


def test_exec_into_missing_pod_is_404_and_unhandled_command_127(fleet: Fleet) -> None:
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        with pytest.raises(ApiException) as nf:
            stream(v1.connect_get_namespaced_pod_exec, "ghost", "kube-system", command=["dcgmi", "discovery", "-l"],
                   stderr=True, stdin=False, stdout=True, tty=False)
        assert "404" in str(nf.value.reason)   # the client reports a refused handshake as status 0 + reason
        ws = stream(v1.connect_get_namespaced_pod_exec, "triton-13b-1", "inference", command=["nvidia-smi"],
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        ws.run_forever(timeout=5)
        assert ws.returncode == 127 and "command not found" in ws.read_stderr()


def test_scale_subresource(fleet: Fleet) -> None:
    with fleet.client() as c:
        apps = AppsV1Api(c)
        assert apps.read_namespaced_deployment_scale("triton-13b", "inference").spec.replicas == 4
        apps.patch_namespaced_deployment_scale("triton-13b", "inference", {"spec": {"replicas": 2}})
        assert fleet.store.get(resource("deployments.apps"), "inference", "triton-13b")["spec"]["replicas"] == 2
        assert fleet.store.get(resource("deployments.apps"), "inference", "triton-13b")["metadata"]["generation"] == 2


def test_stop_does_not_hang_on_an_open_watch() -> None:
    store = ObjectStore("c")
    populate(store)
    url, stop = serve_in_thread(build_kube_app(store))
    opened = threading.Event()

    def watch() -> None:
        try:
            with httpx.stream("GET", f"{url}/api/v1/pods?watch=true", timeout=30) as r:
                opened.set()
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert opened.wait(5)
    started = time.monotonic()
    stop()
    assert time.monotonic() - started < 5
    t.join(5)
    assert not t.is_alive()


def test_watch_with_table_accept_sends_table_events(fleet: Fleet) -> None:
    rv = fleet.store.resource_version
    fleet.store.mutate(resource("nodes"), None, NODE_A, lambda n: n["spec"].update(unschedulable=True))
    r = httpx.get(f"{fleet.url}/api/v1/nodes", params={"watch": "1", "resourceVersion": str(rv), "timeoutSeconds": "0.5"},
                  headers={"Accept": TABLE})
    events = [json.loads(line) for line in r.text.splitlines()]
    assert [e["type"] for e in events] == ["MODIFIED"]
    table = events[0]["object"]
    assert table["kind"] == "Table" and table["rows"][0]["cells"][:2] == [NODE_A, "Ready,SchedulingDisabled"]
    assert table["rows"][0]["object"]["metadata"]["name"] == NODE_A
    full = httpx.get(f"{fleet.url}/api/v1/nodes/{NODE_A}", params={"includeObject": "Object"}, headers={"Accept": TABLE}).json()
    assert full["rows"][0]["object"]["kind"] == "Node" and full["rows"][0]["object"]["status"]["nodeInfo"]


SERVED = [("/api/v1/namespaces", "V1NamespaceList"), ("/api/v1/nodes", "V1NodeList"), ("/api/v1/pods", "V1PodList"),
          ("/apis/apps/v1/daemonsets", "V1DaemonSetList"), ("/apis/apps/v1/replicasets", "V1ReplicaSetList"),
          ("/apis/apps/v1/deployments", "V1DeploymentList"),
          ("/apis/policy/v1/poddisruptionbudgets", "V1PodDisruptionBudgetList"),
          ("/api/v1/events", "CoreV1EventList"), ("/apis/events.k8s.io/v1/events", "EventsV1EventList")]


def test_everything_served_deserializes_after_changes(fleet: Fleet) -> None:
    """What the API serves after real traffic (evictions, status writes, events) still parses, list and watch."""
    with fleet.client() as c:
        v1 = CoreV1Api(c)
        v1.create_namespaced_pod_eviction("triton-13b-1", "inference", {"metadata": {"name": "triton-13b-1"}})
        v1.patch_node_status(NODE_A, {"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}})
        node = fleet.store.get(resource("nodes"), None, NODE_A)
        v1.create_namespaced_event("default", o.event(node, reason="NodeNotReady", message="x", namespace="default"))
        wait_for(lambda: fleet.store.get(resource("poddisruptionbudgets.policy"), "inference", "triton-13b")["status"]
                 .get("conditions"), 5, "PDB conditions")
        for path, model in SERVED:
            body = httpx.get(f"{fleet.url}{path}").text
            parsed = c.deserialize(body, model, "application/json")
            assert parsed.items, path
            item_model = model[:-4]
            watched = httpx.get(f"{fleet.url}{path}", params={"watch": "true", "timeoutSeconds": "0.2"}).text
            for line in watched.splitlines():
                ev = kubernetes.watch.Watch().unmarshal_event(line, item_model)
                assert ev["type"] == "ADDED" and ev["object"].metadata.name
