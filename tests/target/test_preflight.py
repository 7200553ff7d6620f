"""Pre-flight guardrails as the CLI applies them: what is refused, in which order, and that a refusal
comes before the first call that could touch anything (the STS call is counted by a stub client)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.target.guardrails import GuardrailError, TargetUnreachableError, preflight
from harness.target.model import TargetSpec
from harness.target.target import Target

ROOT = Path(__file__).resolve().parents[2]
ECC = ROOT / "scenarios" / "ecc-double-bit-error.yaml"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "http://127.0.0.1:9"}}
- {name: b, cluster: {server: "http://127.0.0.1:9"}}
users: [{name: u, user: {token: planted-preflight-token}}]
contexts:
- {name: prod-use2a, context: {cluster: a, user: u}}
- {name: prod-use2b, context: {cluster: b, user: u}}
current-context: prod-use2a
"""


class StubSts:
    def __init__(self, account: str | Exception) -> None:
        self.account = account
        self.calls = 0

    def get_caller_identity(self) -> dict[str, str]:
        self.calls += 1
        if isinstance(self.account, Exception):
            raise self.account
        return {"Account": self.account}


def target(tmp_path: Path, environment: str = "production", account: str | Exception = "444455556666",
           contexts: tuple[str, ...] = ("prod-use2a", "prod-use2b")) -> tuple[Target, StubSts]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    spec = TargetSpec.model_validate({
        "name": "prod-use2", "environment": environment, "kubeconfig": str(kubeconfig), "contexts": list(contexts),
        "inference_url": "https://inference.example.com", "aws": {"region": "us-east-2"},
        "allowlist": {"contexts": list(contexts), "aws_accounts": ["444455556666"], "regions": ["us-east-2"]},
        "caps": {"max_nodes": 1},
    })
    sts = StubSts(account)
    built = Target(spec, env={})
    built.aws = lambda service: sts   # type: ignore[method-assign]
    return built, sts


def never_asked(prompt: str) -> str:
    raise AssertionError("the prompt must not be reached")


def test_production_without_confirm_is_refused_before_any_call(tmp_path: Path) -> None:
    prod, sts = target(tmp_path)
    with pytest.raises(GuardrailError, match="--confirm <context>"):
        preflight(prod, [], confirm=None, is_tty=True, ask=never_asked)
    with pytest.raises(GuardrailError, match="without a terminal"):
        preflight(prod, [], confirm="prod-use2a", is_tty=False, ask=never_asked)
    assert sts.calls == 0 and prod._kube == {}


def test_production_needs_the_flag_and_the_typed_answer(tmp_path: Path) -> None:
    prod, sts = target(tmp_path)
    prompts: list[str] = []
    assert preflight(prod, [], confirm="prod-use2b", is_tty=True,
                     ask=lambda p: prompts.append(p) or "prod-use2b\n") == "444455556666"
    assert "PRODUCTION" in prompts[0] and sts.calls == 1
    with pytest.raises(GuardrailError, match="did not repeat 'prod-use2b'"):
        preflight(prod, [], confirm="prod-use2b", is_tty=True, ask=lambda p: "yes")

    def closed(prompt: str) -> str:
        raise EOFError
    with pytest.raises(GuardrailError, match="did not repeat"):
        preflight(prod, [], confirm="prod-use2b", is_tty=True, ask=closed)


def test_account_from_sts_must_be_allowlisted_and_is_checked_before_the_prompt(tmp_path: Path) -> None:
    prod, sts = target(tmp_path, account="111122223333")
    with pytest.raises(GuardrailError, match="AWS account 111122223333 is not allowlisted") as info:
        preflight(prod, [], confirm="prod-use2a", is_tty=True, ask=never_asked)
    assert info.value.exit_code == 2 and sts.calls == 1


def test_a_context_missing_from_the_kubeconfig_is_named(tmp_path: Path) -> None:
    staging, sts = target(tmp_path, "staging", contexts=("prod-use2a", "prod-use2c"))
    with pytest.raises(GuardrailError, match="prod-use2c of target 'prod-use2' are not in kubeconfig"):
        preflight(staging, [])
    assert sts.calls == 0


def test_dry_run_on_production_needs_no_confirmation_but_every_allowlist_check(tmp_path: Path) -> None:
    prod, sts = target(tmp_path)
    assert preflight(prod, [], dry_run=True, ask=never_asked) == "444455556666"
    wrong, _ = target(tmp_path, account="111122223333")
    with pytest.raises(GuardrailError, match="not allowlisted"):
        preflight(wrong, [], dry_run=True)


def test_sts_errors_split_into_bad_credentials_and_unreachable(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
    for error, expected in ((NoCredentialsError(), GuardrailError),
                            (ClientError({"Error": {"Code": "ExpiredToken"}}, "GetCallerIdentity"), GuardrailError),
                            (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), TargetUnreachableError)):
        staging, _ = target(tmp_path, "staging", account=error)
        with pytest.raises(expected):
            preflight(staging, [])


def test_a_scenario_outside_the_target_is_refused_before_sts(tmp_path: Path) -> None:
    from harness.scenario.loader import load_scenario_text
    scenario = load_scenario_text(ECC.read_text().replace("us-east-2", "eu-west-1"), "s.yaml")   # its node zone
    staging, sts = target(tmp_path, "staging")
    with pytest.raises(GuardrailError, match="outside target 'prod-use2'"):
        preflight(staging, [scenario])
    assert sts.calls == 0


@pytest.mark.parametrize("command", [["run", str(ECC)], ["run", str(ECC), "--dry-run"], ["gameday", str(ROOT / "scenarios")]])
def test_cli_refuses_production_without_a_terminal_with_exit_2(tmp_path: Path, command: list[str],
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"""\
targets:
  prod-use2:
    environment: production
    kubeconfig: {kubeconfig}
    contexts: [prod-use2a, prod-use2b]
    aws: {{region: us-east-2, endpoint_url: "http://127.0.0.1:9", credentials: {{source: env}}}}
    inference_url: http://127.0.0.1:9
    allowlist: {{contexts: [prod-use2a, prod-use2b], aws_accounts: ["444455556666"], regions: [us-east-2]}}
    caps: {{max_nodes: 1}}
""")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPLANTEDPREFLIGHT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-preflight-secret")
    code = main([*command, "--target", "prod-use2", "--targets-file", str(targets),
                 "--report-dir", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    if "--dry-run" in command:   # a plan needs no confirmation; the dead STS endpoint makes it unreachable
        assert code == 4 and "STS did not answer" in err, err
    else:
        assert code == 2 and "production" in err and "without a terminal" in err, err
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").rglob("journal.jsonl"))
