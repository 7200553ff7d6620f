"""The CLI's fast paths, run as a user runs them (a real `g7chaos` process): bad input, list, recover, matrix usage."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubernetes.client import ApiClient

from harness.journal import Journal
from harness.fleetstate import FleetState, parse_label_selector
from harness.observe import Observation

ROOT = Path(__file__).resolve().parents[2]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"


def g7chaos(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_misspelt_key_is_exit_2_with_position_and_allowed_keys(tmp_path: Path) -> None:
    text = ECC.read_text().replace("  - slo: {window: whole, ttft_p99: 500ms",
                                   "  - slo: {window: whole, ttft_p9: 500ms")
    assert "ttft_p9:" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "ttft_p9:" in l)
    out = g7chaos("run", str(bad), "--report-dir", str(tmp_path / "reports"))
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr + out.stdout
    assert f"{bad}:{line}:" in out.stderr, out.stderr
    assert "ttft_p9" in out.stderr and "ttft_p99" in out.stderr and "tbt_p99" in out.stderr, out.stderr
    assert not (tmp_path / "reports").exists()     # nothing started, nothing written


def test_list_names_every_section_with_descriptions() -> None:
    out = g7chaos("list", "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert set(listing) == {"faults", "checks", "scenarios", "profiles"}
    assert "ecc-double-bit-error" in listing["faults"] and "dcgmi" in listing["faults"]["ecc-double-bit-error"]
    assert {"fault-landed", "node-drained", "slo", "recovery-time"} <= set(listing["checks"])
    assert "ecc-double-bit-error" in listing["scenarios"]
    assert {"article", "no-dbe-remediation", "no-dbe-alarm", "cold-start-from-s3"} <= set(listing["profiles"])
    assert all(line.strip() for section in listing.values() for line in section.values())
    text = g7chaos("list", "profiles")
    assert text.returncode == 0 and "no-dbe-alarm" in text.stdout and "faults:" not in text.stdout


def test_recover_with_nothing_owed_exits_0(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "run-1" / "journal.jsonl")
    rid = journal.register_revert("ecc-double-bit-error", {"context": "c", "pod": "p"})
    journal.reverted(rid)
    journal.close()
    out = g7chaos("recover", "--reports", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "nothing owed" in out.stdout


def test_recover_keeps_what_it_could_not_revert_owed(tmp_path: Path) -> None:
    """A journal whose target no longer answers: exit 4, and the revert stays owed for the next recover."""
    journal = Journal(tmp_path / "run-1" / "journal.jsonl")
    journal.write("run-started", scenario="x", target="twin", twin_endpoints=str(tmp_path / "gone.json"))
    journal.register_revert("ecc-double-bit-error", {"context": "g7-use2a", "namespace": "kube-system",
                                                     "pod": "dcgm-server-x", "node": "n", "gpu": 0, "field": 319})
    journal.close()
    out = g7chaos("recover", "--reports", str(tmp_path))
    assert out.returncode == 4, (out.stdout, out.stderr)
    assert "still owed" in out.stderr and "Traceback" not in out.stderr


def test_matrix_rejects_an_unknown_profile_before_starting_anything(tmp_path: Path) -> None:
    out = g7chaos("matrix", str(ROOT / "scenarios"), "--profiles", "article,no-such-profile",
                  "--report-dir", str(tmp_path / "m"))
    assert out.returncode == 2 and "no-such-profile" in out.stderr
    assert not (tmp_path / "m").exists()


def test_matrix_rejects_zero_workers(tmp_path: Path) -> None:
    out = g7chaos("matrix", str(ROOT / "scenarios"), "--workers", "0", "--report-dir", str(tmp_path / "m"))
    assert out.returncode == 2 and "--workers" in out.stderr and "Traceback" not in out.stderr


def test_matrix_columns_run_in_worker_processes_and_keep_the_profile_order(tmp_path: Path) -> None:
    """Two columns side by side, each in its own worker; neither twin can start (a negative time scale), so
    every cell ends in error quickly, and the matrix still holds both columns in the order asked for."""
    report = tmp_path / "m"
    out = g7chaos("matrix", str(ROOT / "scenarios"), "--profiles", "no-dbe-alarm,article",
                  "--scenario", "ecc-double-bit-error", "--time-scale", "-1", "--workers", "2",
                  "--report-dir", str(report), timeout=120)
    assert out.returncode == 4, (out.stdout[-2000:], out.stderr[-2000:])
    matrix = json.loads((report / "matrix.json").read_text())
    assert matrix["profiles"] == ["no-dbe-alarm", "article"]
    cells = matrix["cells"]["ecc-double-bit-error"]
    assert {p: c["verdict"] for p, c in cells.items()} == {"no-dbe-alarm": "error", "article": "error"}
    for profile in ("no-dbe-alarm", "article"):
        assert "twin did not start" in cells[profile]["reason"] and f"/{profile}/twin/" in cells[profile]["reason"]
        assert f"profile {profile}: 1 scenario(s) on a fresh twin" in (report / profile / "console.log").read_text()
        assert f"profile {profile}: 0 pass, 0 fail, 0 inconclusive, 1 error" in out.stdout


# ------------------------------------------------------------------------------------ steady-state judgement

def _node(name: str, *, ready: str = "True", gpus: str = "8", cordoned: bool = False,
          itype: str = "g7.48xlarge") -> object:
    raw = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"node.kubernetes.io/instance-type": itype}},
           "spec": {"unschedulable": cordoned},
           "status": {"capacity": {"nvidia.com/gpu": "8"}, "allocatable": {"nvidia.com/gpu": gpus},
                      "conditions": [{"type": "Ready", "status": ready}]}}
    return ApiClient()._ApiClient__deserialize(raw, "V1Node")


def _pod(name: str, *, ready: str = "True", phase: str = "Running") -> object:
    raw = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "inference", "labels": {"app": "triton", "model": "m"}},
           "spec": {"containers": [{"name": "triton"}]},
           "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}
    return ApiClient()._ApiClient__deserialize(raw, "V1Pod")


def _judge(observations: list[Observation], ignore=()) -> list[str]:
    state = FleetState()
    state.fold(observations)
    return state.problems(pod_namespace="inference", pod_labels=parse_label_selector("app=triton"),
                          ignore_cordoned=ignore)


def test_fleet_state_names_what_keeps_it_from_steady() -> None:
    def obs(kind, type_, obj):
        return Observation(0.0, "c", kind, type_, obj.metadata.name, obj.metadata.namespace, obj)
    steady = [obs("Node", "LISTED", _node("n1")), obs("Pod", "LISTED", _pod("p1"))]
    assert _judge(steady) == []
    assert _judge(steady + [obs("Node", "MODIFIED", _node("n1", cordoned=True))]) == ["c/n1 cordoned"]
    assert _judge(steady + [obs("Node", "MODIFIED", _node("n1", cordoned=True))], ignore={("c", "n1")}) == []
    assert _judge(steady + [obs("Node", "MODIFIED", _node("n1", gpus="0"))]) == ["c/n1 allocatable nvidia.com/gpu 0/8"]
    assert _judge(steady + [obs("Node", "ADDED", _node("n2", ready="False", itype="g7.12xlarge", gpus="2"))]) == \
        ["c/n2 not Ready"]
    assert _judge(steady + [obs("Pod", "ADDED", _pod("p2", phase="Pending", ready="False"))]) == \
        ["c/p2 not Ready (Pending)"]
    # a replaced node: the old one deleted, the new one Ready with every GPU
    replaced = steady + [obs("Node", "DELETED", _node("n1", cordoned=True)), obs("Node", "ADDED", _node("n3"))]
    assert _judge(replaced) == []
    assert _judge([]) == ["no node observed"]
