"""Reports never contain credentials: secrets planted in a kubeconfig and in the environment are absent from
every file and every console line, and ordinary figures survive redaction untouched."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest

from harness.redact import REDACTED, Redactor
from harness.report.console import ConsoleView
from harness.report.matrix import VerdictMatrix, write_matrix
from harness.report.model import GamedayResult
from harness.report.writers import write_gameday, write_run

from report_factory import make_run, write_records

KUBE_TOKEN = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtZWFzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eQ"
CLIENT_KEY_DATA = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB"
KUBE_PASSWORD = "hunter2-but-longer"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_SESSION = "FwoGZXIvYXdzEBYaDHN1cGVyc2VjcmV0dG9rZW4iJ0FzSUFfYWJjZGVmZ2hpams+Kw=="
SECRETS = [KUBE_TOKEN, CLIENT_KEY_DATA, KUBE_PASSWORD, AWS_SECRET, AWS_SESSION]

KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: g7-use2a
  cluster: {{server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}
contexts:
- name: g7-use2a
  context: {{cluster: g7-use2a, user: harness}}
current-context: g7-use2a
users:
- name: harness
  user:
    token: {KUBE_TOKEN}
- name: admin
  user:
    client-key-data: {CLIENT_KEY_DATA}
    username: admin
    password: {KUBE_PASSWORD}
"""


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """Secrets in a kubeconfig (named by KUBECONFIG) and in the environment, the way a CI job has them."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION)
    # The secrets leak the ways they do in practice: an exception that printed request headers, a kubeconfig
    # dump in evidence, a boto3 error echoing its credentials, free text in a revert error.
    run = make_run(
        failed=("node-drained",),
        error=None,
        evidence_extra={
            "request_headers": {"Authorization": f"Bearer {KUBE_TOKEN}"},
            "kubeconfig_user": {"client-key-data": CLIENT_KEY_DATA, "password": KUBE_PASSWORD},
            "aws_error": f"SignatureDoesNotMatch for secret {AWS_SECRET} token={AWS_SESSION}",
            "note": f"retried with session token {AWS_SESSION} and password {KUBE_PASSWORD}",
        })
    run.checks[1].reason = f"evict failed: 401 for token {KUBE_TOKEN}; max_tokens: 128; 41.2 s"
    run.faults[0].revert_error = f"dcgmi failed as admin:{KUBE_PASSWORD}@host with key {AWS_SECRET}"
    run.description = f"uses <{AWS_SECRET}> & \"{KUBE_PASSWORD}\""
    return run, tmp_path


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} leaks {secret[:12]}..."
        assert json.dumps(secret)[1:-1] not in text, f"{where} leaks an escaped {secret[:12]}..."
    assert REDACTED in text, f"{where} redacted nothing"


def test_no_report_file_contains_a_planted_secret(planted):
    run, tmp_path = planted
    records = tmp_path / "records.jsonl"
    write_records(records)
    files = []
    files += write_run(run, tmp_path / "run", records=records).model_dump().values()
    day = GamedayResult.from_runs([run, make_run(scenario="spot-interruption")])
    files += write_gameday(day, tmp_path / "day").model_dump().values()
    matrix_json = write_matrix(VerdictMatrix.from_gamedays([("article", day)]), tmp_path / "matrix")
    files += [matrix_json, matrix_json.with_suffix(".txt")]
    written = [f for f in files if f is not None]
    assert len(written) == 8
    for path in written:
        text = path.read_text()
        if path.name != "matrix.txt":   # the matrix table shows check names only; the rest carry the reasons
            _assert_clean(text, str(path))
        else:
            assert all(s not in text for s in SECRETS)
        if path.suffix == ".json":
            json.loads(text)
        if path.suffix == ".xml":
            ET.fromstring(text)
    # redaction keeps the figures the reports exist for
    result_text = (tmp_path / "run" / "result.json").read_text()
    assert "max_tokens: 128; 41.2 s" in result_text and '"ttft_p99_ms": 470.0' in result_text


def test_console_never_prints_a_planted_secret(planted):
    run, _ = planted
    out = io.StringIO()
    view = ConsoleView(out, live=False, width=400)
    with view:
        view.event(f"kubectl said: Authorization: Bearer {KUBE_TOKEN}")
        view.phase(f"revert with {AWS_SECRET}")
    view.final(run)
    _assert_clean(out.getvalue(), "console")


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer abcdefghijklmnop.qrs", "abcdefghijklmnop.qrs"),
    ("aws_secret_access_key = AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"),
    ('{"SecretAccessKey": "zzzzzzzzzzzzzzzz", "SessionToken": "yyyyyyyyyyyy"}', "zzzzzzzzzzzzzzzz"),
    ('{"SecretAccessKey": "zzzzzzzzzzzzzzzz", "SessionToken": "yyyyyyyyyyyy"}', "yyyyyyyyyyyy"),
    ("client-key-data: LS0tLS1CRUdJTiBQUklWQVRF", "LS0tLS1CRUdJTiBQUklWQVRF"),
    ("https://admin:s3cretpass@example.com/x", "s3cretpass"),
    ("X-Amz-Security-Token=IQoJb3JpZ2luX2VjEHMaCXVz&X-Amz-Date=1", "IQoJb3JpZ2luX2VjEHMaCXVz"),
    ("access key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA"),
])
def test_patterns(text, secret):
    redacted = Redactor(environ={}).text(text)
    assert secret not in redacted and REDACTED in redacted


@pytest.mark.parametrize("text", [
    "max_tokens: 128, prompt_tokens=256, tokens_per_s 14800",
    "ttft p99 470.0 ms > 500 ms; error_rate 1.05%",
    "node ip-10-0-1-12.us-east-2.compute.internal gpu 0 in http://127.0.0.1:8080/v1/completions",
    "idempotency_key: 3f2a9c1e-77aa and first token after 180 ms",
    "token: 5",
])
def test_ordinary_text_is_left_alone(text):
    assert Redactor(environ={}).text(text) == text


def test_env_values_only_for_secret_names_and_long_enough():
    redactor = Redactor(environ={"MY_API_KEY": "value-of-the-key", "PASSWORD": "short", "HOME": "/home/sre-user"})
    assert redactor.text("x value-of-the-key y") == f"x {REDACTED} y"
    assert redactor.text("short") == "short"            # under 8 characters: too likely to be ordinary text
    assert redactor.text("/home/sre-user") == "/home/sre-user"


def test_structured_data_drops_secret_named_values():
    data = Redactor(environ={}).data({"token": "abc", "password": ["x"], "max_tokens": 64, "nested": {"api_key": "k"},
                                      "tokens": "many", "session_token": None})
    assert data == {"token": REDACTED, "password": REDACTED, "max_tokens": 64, "nested": {"api_key": REDACTED},
                    "tokens": "many", "session_token": None}
