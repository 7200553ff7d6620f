"""deploy/load-workers.yaml and deploy/Dockerfile: load workers next to the gateway that can reach the game day's
load master and the inference service and nothing else, hold the run's token and no other secret, and run where
no scenario cuts them off."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from harness.cli import build_parser
from harness.target.model import load_targets_text

from support.deploy import DEPLOY, az_loss_zones, cronjob_documents, zones_excluded


def documents() -> dict[str, dict[str, Any]]:
    """kind/name -> document."""
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all((DEPLOY / "load-workers.yaml").read_text())}


def worker_pod() -> dict[str, Any]:
    return documents()["Deployment/g7chaos-load-workers"]["spec"]["template"]["spec"]


def gameday_pod() -> dict[str, Any]:
    job, _ = cronjob_documents()
    return job["spec"]["jobTemplate"]["spec"]["template"]


def test_workers_join_the_master_the_game_day_binds_through_the_service_with_the_token_from_a_file() -> None:
    docs = documents()
    service = docs["Service/g7chaos-load-master"]
    container = worker_pod()["containers"][0]
    args = build_parser().parse_args(container["args"])         # every flag exists
    assert args.command == "load-worker" and args.token_file == Path("/etc/g7chaos-load/token")
    host, port = args.master.rsplit(":", 1)
    assert host == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert int(port) == service["spec"]["ports"][0]["port"]
    # the Service reaches the game-day pod, whose target binds the master on the Service's target port
    labels = gameday_pod()["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    _, config = cronjob_documents()
    target = load_targets_text(config["data"]["targets.yaml"], "cronjob targets.yaml")["staging"]
    assert target.load_master == f"0.0.0.0:{service['spec']['ports'][0]['targetPort']}"
    # both sides read the token from the same Secret; no token value is written anywhere
    mounted = {v["name"]: v for v in worker_pod()["volumes"]}["token"]["secret"]["secretName"]
    env = {e["name"]: e for e in gameday_pod()["spec"]["containers"][0]["env"]}
    assert env["G7CHAOS_LOAD_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == mounted
    assert "value" not in env["G7CHAOS_LOAD_TOKEN"]                  # a reference, never the token itself


def test_a_worker_holds_no_credential_and_no_binding() -> None:
    pod = worker_pod()
    assert pod["automountServiceAccountToken"] is False
    account = documents()[f"ServiceAccount/{pod['serviceAccountName']}"]
    assert account["automountServiceAccountToken"] is False
    subjects = [s for d in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()) if d.get("kind", "").endswith("Binding")
                for s in d.get("subjects", [])]
    assert subjects and all(s.get("name") != pod["serviceAccountName"] for s in subjects)
    container = pod["containers"][0]
    assert "env" not in container and [m["mountPath"] for m in container["volumeMounts"]] == ["/etc/g7chaos-load"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_workers_reach_the_master_the_inference_service_and_dns_only_and_only_they_reach_the_master() -> None:
    docs = documents()
    egress = docs["NetworkPolicy/g7chaos-load-worker-egress"]["spec"]
    assert set(egress["policyTypes"]) == {"Egress", "Ingress"} and egress["ingress"] == []
    ports = sorted((p["port"], p["protocol"]) for rule in egress["egress"] for p in rule["ports"])
    assert ports == [(53, "TCP"), (53, "UDP"), (5557, "TCP"), (8000, "TCP")]
    master = docs["NetworkPolicy/g7chaos-load-master-ingress"]["spec"]
    assert master["podSelector"]["matchLabels"].items() <= gameday_pod()["metadata"]["labels"].items()
    (rule,) = master["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": worker_pod_labels()}}]


def worker_pod_labels() -> dict[str, str]:
    return documents()["Deployment/g7chaos-load-workers"]["spec"]["template"]["metadata"]["labels"]


def test_workers_never_run_in_a_zone_a_scenario_cuts_nor_on_spot() -> None:
    pod = worker_pod()
    cut = az_loss_zones()
    assert cut and cut <= zones_excluded(pod), f"workers may run inside {sorted(cut - zones_excluded(pod))}"
    expressions = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "eks.amazonaws.com/capacityType", "operator": "NotIn", "values": ["SPOT"]} in expressions


def test_the_image_installs_the_project_and_runs_g7chaos_unprivileged() -> None:
    lines = [line.split("#")[0].strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    steps = [line for line in lines if line]
    run = " ".join(s for s in steps if s.startswith("RUN "))
    assert "pip install ." in run
    assert 'ENTRYPOINT ["g7chaos"]' in steps
    user = [s.split()[1] for s in steps if s.startswith("USER ")]
    assert user and user[-1] != "0" and user[-1] != "root"
    assert int(user[-1]) == worker_pod()["securityContext"]["runAsUser"]
    copied = {shlex.split(s)[1] for s in steps if s.startswith("COPY ")}
    assert "harness" in copied and "pyproject.toml" in copied
