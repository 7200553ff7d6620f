"""The cluster lane's marks: each change between two observations of an object is one mark, the fleet as the
first list found it is none."""
from types import SimpleNamespace as NS

from harness.observe import Observation
from harness.run.clustermarks import MarkDeriver

ZONE = "topology.kubernetes.io/zone"


def node(name, *, cordoned=False, ready="True", dbe=None):
    conditions = [NS(type="Ready", status=ready, reason="KubeletReady" if ready == "True" else "NodeStatusUnknown",
                     message="")]
    if dbe is not None:
        conditions.append(NS(type="AcceleratedHardwareReady", status=dbe, reason="NvidiaDoubleBitError", message="x"))
    return NS(metadata=NS(labels={ZONE: "us-east-2a"}), spec=NS(unschedulable=cordoned),
              status=NS(conditions=conditions))


def pod(name, on, *, ready=True, deleting=False):
    return NS(metadata=NS(deletion_timestamp="now" if deleting else None), spec=NS(node_name=on),
              status=NS(conditions=[NS(type="Ready", status="True" if ready else "False", reason="", message="")]))


def obs(at, kind, type_, name, obj, namespace=None):
    return Observation(at, "ctx", kind, type_, name, namespace, obj)


def test_changes_become_marks_and_the_first_list_is_the_baseline():
    marks = MarkDeriver().fold([
        obs(1, "Node", "LISTED", "n1", node("n1")),
        obs(1, "Pod", "LISTED", "p1", pod("p1", "n1"), "ml"),
        obs(2, "Node", "MODIFIED", "n1", node("n1", dbe="False")),
        obs(3, "Node", "MODIFIED", "n1", node("n1", dbe="False", cordoned=True)),
        obs(4, "Pod", "MODIFIED", "p1", pod("p1", "n1", ready=False), "ml"),
        obs(5, "Pod", "MODIFIED", "p1", pod("p1", "n1", ready=False, deleting=True), "ml"),
        obs(6, "Pod", "DELETED", "p1", pod("p1", "n1", ready=False, deleting=True), "ml"),
        obs(7, "Node", "ADDED", "n2", node("n2")),
        obs(8, "Node", "MODIFIED", "n1", node("n1", dbe="False", cordoned=True, ready="Unknown")),
        obs(9, "Node", "DELETED", "n1", node("n1", dbe="False", cordoned=True, ready="Unknown")),
    ])
    got = [(m.at, m.kind, m.subject) for m in marks]
    assert got == [(1, "pod-placed", "p1"), (2, "node-condition", "n1"), (3, "cordon", "n1"),
                   (4, "pod-not-ready", "p1"), (5, "pod-evicted", "p1"), (7, "node-joined", "n2"),
                   (7, "node-ready", "n2"), (8, "node-not-ready", "n1"), (9, "node-deleted", "n1")]
    condition = marks[1]
    assert "NvidiaDoubleBitError" in condition.label and condition.zone == "us-east-2a" and condition.node == "n1"
    assert marks[3].node == "n1"          # a pod's mark names its node, so a fault's milestones can find it


def test_an_unchanged_observation_is_no_mark():
    marks = MarkDeriver().fold([obs(1, "Node", "LISTED", "n1", node("n1")),
                                obs(2, "Node", "MODIFIED", "n1", node("n1")),
                                obs(3, "Node", "MODIFIED", "n1", node("n1"))])
    assert marks == []
