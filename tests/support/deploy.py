"""What the tests of deploy/ read: its documents, and where their pods may and may not run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def cronjob_documents() -> tuple[dict, dict]:
    job, config = list(yaml.safe_load_all((DEPLOY / "cronjob.yaml").read_text()))
    return job, config


def az_loss_zones() -> set[str]:
    """Every zone a shipped scenario cuts."""
    from harness.scenario.loader import load_scenario_text
    zones = set()
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        scenario = load_scenario_text(path.read_text(), path.name)
        zones |= {step.params.zone for step in scenario.faults if step.fault == "az-loss"}
    return zones


def zones_excluded(pod: dict[str, Any]) -> set[str]:
    """Zones the pod can never be scheduled in: in every nodeSelectorTerm (ORed) a NotIn on the zone label."""
    terms = pod.get("affinity", {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
    if not terms:
        return set()
    per_term = [{v for e in term.get("matchExpressions", []) if e["key"] == "topology.kubernetes.io/zone"
                 and e["operator"] == "NotIn" for v in e["values"]} for term in terms]
    return set.intersection(*per_term)
