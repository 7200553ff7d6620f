"""Safe to point at a real cluster, proved from the server's side: the twin's audit log of every API call.

One twin runs in this process (so the test reads its audit log directly); `g7chaos` is pointed at it through a
targets.yaml, exactly as at a real deployment: as a child process for the dry run and the game day, in this
process for refusals (which start nothing). Proved here:
- a production target without --confirm (or without a terminal) is refused with exit 2 before a single call;
  an account outside the allowlist is refused after the read-only STS call alone;
- `--dry-run` prints a plan with reads only: not one mutating Kubernetes or AWS call;
- a token and a client key planted in the kubeconfig, and AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in the
  environment, appear in no file of a game day's reports (result.json, junit.xml, report.html, journal.jsonl,
  load records), while the run did use them;
- every call the harness made in that game day and the dry run is allowed by deploy/rbac.yaml (in the
  namespace it was made in; the twin enforces the file, so a refused call would also have been a 403) and
  deploy/iam-policy.json (their static match with the code is tests/deploy/test_deploy_policies.py).
The game day is one shipped scenario shortened (2 minutes at time scale 30); the FIS and ARC faults are
injected, landed and reverted directly through the harness's fault classes, without load, to keep it cheap.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from harness.twin.aws.iam import IamPolicy
from harness.twin.kube.auditlog import ApiCall, audit_of, read_audit
from harness.twin.kube.rbac import RbacPolicy
from harness.twin.server import TwinHandle, TwinServer

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
PLANTED_TOKEN = "k8s-planted-bearer-0f4e9a7c2b"
PLANTED_KEY_PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEplantedclientkeybody0123456789abcdefPLANTED\n"
                   "-----END RSA PRIVATE KEY-----\n")
PLANTED_KEY_DATA = base64.b64encode(PLANTED_KEY_PEM.encode()).decode()
PLANTED_CERT_DATA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIcertplanted\n-----END CERTIFICATE-----\n").decode()
PLANTED_AWS_SECRET = "wJalrPLANTEDsecretAccessKey/K7MDENG/bPxRfiCY"
PLANTED_SESSION_TOKEN = "IQoJb3JpZ2luPLANTEDsessionTokenValue0123456789"
SECRETS = (PLANTED_TOKEN, PLANTED_KEY_DATA, "MIIEplantedclientkeybody", PLANTED_CERT_DATA, PLANTED_AWS_SECRET,
           PLANTED_SESSION_TOKEN)
SHORTEN = {  # a shipped scenario, 2 minutes long with the fault early; its verdict does not matter here
    "ecc-double-bit-error.yaml": [(r"(?m)^duration: .*$", "duration: 2m"), (r"(?m)^(\s*- at: ).*$", r"\g<1>15s")],
}
PLANNED = ("az-loss", "cold-start", "device-plugin-race", "ecc-double-bit-error", "efa-saturation",
           "gpu-thermal-throttle", "retry-storm", "spot-interruption")   # every fault's plan() reads
ENV = {"AWS_ACCESS_KEY_ID": "AKIAPLANTEDGUARDTEST", "AWS_SECRET_ACCESS_KEY": PLANTED_AWS_SECRET,
       "AWS_SESSION_TOKEN": PLANTED_SESSION_TOKEN}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinHandle]:
    # the twin enforces deploy/rbac.yaml as an API server would: a call it does not allow is answered 403
    handle = TwinServer.start_in_thread(profile="article", nodes_per_az=2, time_scale=30.0,
                                        rbac=str(ROOT / "deploy" / "rbac.yaml"),
                                        out_dir=tmp_path_factory.mktemp("guarded-twin") / "twin")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def endpoints(twin: TwinHandle) -> dict[str, Any]:
    return json.loads((Path(twin.twin.out_dir) / "endpoints.json").read_text())


@pytest.fixture(scope="module")
def targets_file(endpoints: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod (production), stg (staging, secrets planted in its kubeconfig), other-account (staging, wrong account)."""
    folder = tmp_path_factory.mktemp("targets")
    kubeconfig = json.loads(Path(endpoints["kubeconfig"]).read_text())
    for entry in kubeconfig["users"]:
        entry["user"] = {"token": PLANTED_TOKEN, "client-certificate-data": PLANTED_CERT_DATA,
                         "client-key-data": PLANTED_KEY_DATA}
    (folder / "kubeconfig").write_text(json.dumps(kubeconfig))
    aws = {"region": endpoints["region"], "endpoint_url": endpoints["aws_endpoint"],
           "endpoints": endpoints["aws_endpoints"], "credentials": {"source": "env"}}
    common = {"kubeconfig": str(folder / "kubeconfig"), "contexts": endpoints["contexts"], "aws": aws,
              "inference_url": endpoints["inference_url"]}
    targets = {
        "prod": {**common, "environment": "production", "caps": {"max_nodes": 4},
                 "allowlist": {"contexts": endpoints["contexts"], "aws_accounts": [endpoints["account_id"]],
                               "regions": [endpoints["region"]]}},
        "stg": {**common, "environment": "staging", "time_scale": endpoints["time_scale"],
                "allowlist": {"aws_accounts": [endpoints["account_id"]]}},
        "other-account": {**common, "environment": "staging", "time_scale": endpoints["time_scale"],
                          "allowlist": {"aws_accounts": ["111122223333"]}},
    }
    path = folder / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": targets}))
    return path


def g7chaos(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def client_calls(twin: TwinHandle, since: int) -> list[ApiCall]:
    return audit_of(twin).calls(since=since, internal=False)


def cli_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`g7chaos` in this process (a refusal starts nothing worth a child process); stdin is no terminal here."""
    from harness.cli import main
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code = main(list(args))
    return code, capsys.readouterr().err


def test_production_is_refused_before_a_single_call(twin: TwinHandle, targets_file: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    mark = audit_of(twin).mark()
    ecc = str(SCENARIOS / "ecc-double-bit-error.yaml")
    for extra in ([], ["--confirm", "g7-use2a"]):      # no flag; the flag but no terminal to answer at
        code, err = cli_in_process(monkeypatch, capsys, "run", ecc, "--target", "prod", "--targets-file",
                                   str(targets_file), *extra, "--report-dir", str(tmp_path / "reports"))
        assert code == 2 and "'prod' is production" in err, err
    assert client_calls(twin, mark) == []                # not even a read
    assert not (tmp_path / "reports").exists()


def test_an_account_outside_the_allowlist_is_refused_after_sts_alone(twin: TwinHandle, targets_file: Path,
                                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    mark = audit_of(twin).mark()
    code, err = cli_in_process(monkeypatch, capsys, "run", str(SCENARIOS / "ecc-double-bit-error.yaml"), "--target",
                               "other-account", "--targets-file", str(targets_file),
                               "--report-dir", str(tmp_path / "reports"))
    assert code == 2, err
    assert "AWS account 123456789012 is not allowlisted for target 'other-account'" in err
    assert [c.action for c in client_calls(twin, mark)] == ["sts:GetCallerIdentity"]


@pytest.fixture(scope="module")
def dry_run_calls(twin: TwinHandle, targets_file: Path, endpoints: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> list[ApiCall]:
    """The shipped scenarios' plans, against a production target (a plan needs no confirmation)."""
    mark = audit_of(twin).mark()
    reports = tmp_path_factory.mktemp("dry-run-reports")
    out = g7chaos("run", *(str(SCENARIOS / f"{name}.yaml") for name in PLANNED), "--dry-run", "--target", "prod",
                  "--targets-file", str(targets_file), "--report-dir", str(reports))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "nothing was changed" in out.stdout and "a real run needs --confirm" in out.stdout
    assert not list(reports.rglob("journal.jsonl"))
    # the same log over loopback, as a test in another process would read it
    over_http = read_audit(endpoints["kube_urls"][endpoints["contexts"][0]], since=mark)
    assert {c["seq"] for c in over_http["calls"]} >= {c.seq for c in client_calls(twin, mark)}
    return client_calls(twin, mark)


def test_dry_run_plans_with_reads_only(dry_run_calls: list[ApiCall]) -> None:
    actions = {c.action for c in dry_run_calls}
    assert {"sts:GetCallerIdentity", "list nodes"} <= actions, actions     # it did read the deployment
    assert [c.action for c in dry_run_calls if c.mutating] == []


@pytest.fixture(scope="module")
def gameday(twin: TwinHandle, targets_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A short game day (DCGM exec, watches, alarms) on the staging target with secrets planted."""
    folder = tmp_path_factory.mktemp("short-scenarios")
    for name, edits in SHORTEN.items():
        text = (SCENARIOS / name).read_text()
        for pattern, replacement in edits:
            text, count = re.subn(pattern, replacement, text, count=1)
            assert count == 1, (name, pattern)
        (folder / name).write_text(text)
    reports = tmp_path_factory.mktemp("gameday-reports")
    mark = audit_of(twin).mark()
    out = g7chaos("gameday", str(folder), "--target", "stg", "--targets-file", str(targets_file),
                  "--report-dir", str(reports), timeout=180)
    return {"out": out, "reports": reports, "calls": client_calls(twin, mark)}


def test_planted_secrets_appear_in_no_report_file(gameday: dict[str, Any]) -> None:
    out, reports = gameday["out"], gameday["reports"]
    # a verdict (inconclusive too: a busy machine can degrade the load's measurement), or an error a busy machine
    # can cause (no first answer in time): the reports are written either way
    assert out.returncode in (0, 1, 4, 5), out.stdout[-3000:] + out.stderr[-3000:]
    files = [p for p in reports.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"result.json", "junit.xml", "report.html", "journal.jsonl"} <= names, names
    assert len([p for p in files if p.name == "journal.jsonl"]) == len(SHORTEN)
    if out.returncode != 4:
        assert any(p.parent.name == "load" or "load" in p.name for p in files), names   # the load's own records
    leaks = [(str(p.relative_to(reports)), secret[:12]) for p in files for secret in SECRETS
             if secret in p.read_text(errors="replace")]
    assert leaks == []
    for stream in (out.stdout, out.stderr):
        assert not [secret for secret in SECRETS if secret in stream]
    # the secrets were in play: the run made its calls with that kubeconfig and those AWS keys
    assert any(c.api == "kube" for c in gameday["calls"]) and any(c.api == "aws" for c in gameday["calls"])


def test_gameday_records_its_history_and_ends_by_naming_the_index(gameday: dict[str, Any]) -> None:
    reports = gameday["reports"]
    kinds = [json.loads(line)["kind"] for line in (reports / "history.jsonl").read_text().splitlines()]
    assert kinds == ["run"] * len(SHORTEN) + ["gameday"]
    assert gameday["out"].stdout.splitlines()[-1] == f"index: {reports / 'index.html'}"
    assert (reports / "index.html").is_file()


def rbac_policy() -> RbacPolicy:
    """deploy/rbac.yaml as the API server's authorizer reads it: a call in namespace X is allowed only by a
    Role bound in X or by the ClusterRole."""
    return RbacPolicy.from_yaml((ROOT / "deploy" / "rbac.yaml").read_text(), ("g7chaos", "g7chaos"))


def iam_allows(action: str) -> bool:
    """Some statement of deploy/iam-policy.json allows the action (the audit log names no resource or tags:
    their scoping is held in tests/deploy/test_deploy_policies.py)."""
    return action in IamPolicy.from_json((ROOT / "deploy" / "iam-policy.json").read_text()).actions()


@pytest.fixture(scope="module")
def fault_calls(twin: TwinHandle, targets_file: Path, tmp_path_factory: pytest.TempPathFactory) -> list[ApiCall]:
    """The FIS and ARC faults as a run drives them (plan, inject, landed, revert) on the staging target."""
    import random
    import time

    from harness.faults import FAULTS, RunContext
    from harness.journal import Journal, owed_reverts
    from harness.observe import Timeline
    from harness.scenario.loader import load_scenario_text
    from harness.target.model import find_target_spec
    from harness.target.target import Target
    target = Target(find_target_spec("stg", targets_file), env=ENV)
    scenario = load_scenario_text("""\
name: fis-and-arc
description: the faults that call FIS and ARC zonal shift
duration: 10m
load: {users: 1}
faults:
  - {at: 1m, duration: 1m, az-loss: {zone: us-east-2b, mode: network, zonal_shift: true}}
  - {at: 1m, spot-interruption: {node: {zone: us-east-2a, model: llama-13b-fp8}, notice: 2m}}
checks:
  - fault-landed: {within: 1m}
""", "fis-and-arc.yaml")
    journal_path = tmp_path_factory.mktemp("fault-journal") / "journal.jsonl"
    journal = Journal(journal_path)
    mark = audit_of(twin).mark()
    try:
        for index, step in enumerate(scenario.faults):
            fault = FAULTS[step.fault](step.params, RunContext(target=target, journal=journal, timeline=Timeline(),
                                                               rng=random.Random(index)))
            fault.step = step
            fault.plan()
            fault.inject()
            try:
                assert fault.await_landed(time.time() + 20), f"{step.fault} never landed"
            finally:
                fault.revert()
    finally:
        journal.close()
    assert owed_reverts(journal_path) == []
    return client_calls(twin, mark)


def test_every_call_the_harness_made_is_allowed_by_the_deploy_policies(gameday: dict[str, Any],
                                                                        dry_run_calls: list[ApiCall],
                                                                        fault_calls: list[ApiCall]) -> None:
    calls = [*gameday["calls"], *dry_run_calls, *fault_calls]
    rbac = rbac_policy()
    denied = []
    for call in calls:
        if call.api == "kube":
            if not call.resource:
                continue                   # discovery and /version: open to every authenticated user
            resource = f"{call.resource}/{call.subresource}" if call.subresource else call.resource
            if not rbac.allows(call.verb, call.group, resource, call.namespace, call.name):
                denied.append(f"{call.verb} {call.group}/{resource} in {call.namespace or '(cluster)'} ({call.path})")
        elif not iam_allows(f"{call.endpoint}:{call.verb}"):
            denied.append(f"{call.endpoint}:{call.verb}")
    assert sorted(set(denied)) == []
    assert [c.path for c in calls if c.api == "kube" and c.status == 403] == []   # the twin refused none either
    made = {c.action for c in calls}
    # the run reached the calls that matter for least privilege, so the check above is not vacuous
    assert {"get pods/exec", "fis:CreateExperimentTemplate", "fis:StartExperiment",
            "arc-zonal-shift:StartZonalShift", "watch nodes"} <= made, sorted(made)
    assert {c.action for c in [*gameday["calls"], *fault_calls] if c.mutating} >= {"get pods/exec",
                                                                                   "fis:StartExperiment"}
    assert not any(c.mutating for c in dry_run_calls)   # the same log that saw the run's mutations saw none here
