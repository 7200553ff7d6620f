"""Redaction: no token, key or password survives into a report or a target's description, and ordinary metrics are
left alone."""
from __future__ import annotations

import json

from harness.redact import REDACTED, Redactor, is_secret_key, redact


def test_sensitive_keys_are_whole_words():
    for key in ("token", "Authorization", "client-key-data", "aws_secret_access_key", "X-Amz-Security-Token",
                "db_password", "session_token", "api_key"):
        assert is_secret_key(key), key
    for key in ("prompt_tokens", "max_tokens", "tokens", "idempotency_keys", "ttft_p99_ms", "keyboard"):
        assert not is_secret_key(key), key


def test_dicts_lists_and_text_are_redacted():
    data = {
        "kubeconfig": {"users": [{"name": "u", "user": {"token": "abcdefgh12345678",
                                                       "client-key-data": "LS0tLS1CRUdJTiBSU0E="}}]},
        "aws": {"aws_access_key_id": "AKIAABCDEFGHIJKLMNOP", "region": "us-east-2"},
        "error": "GET https://admin:s3cr3tpass@host/x failed: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "log": ["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "key AKIAABCDEFGHIJKLMNOP used"],
        "metrics": {"prompt_tokens": 256, "max_tokens": 128, "requests": 10},
        "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    }
    out = redact(data, environ={})
    text = json.dumps(out)
    for secret in ("abcdefgh12345678", "LS0tLS1CRUdJTiBSU0E=", "AKIAABCDEFGHIJKLMNOP", "s3cr3tpass",
                   "eyJhbGciOiJIUzI1NiJ9", "wJalrXUtnFEMI", "MIIE"):
        assert secret not in text, secret
    assert out["metrics"] == {"prompt_tokens": 256, "max_tokens": 128, "requests": 10}
    assert out["aws"]["region"] == "us-east-2"
    assert out["kubeconfig"]["users"][0]["user"]["token"] == REDACTED


def test_secret_environment_values_are_removed_wherever_they_appear():
    env = {"GITHUB_TOKEN": "ghp_plantedvalue0001", "HOME": "/root", "SHORT_KEY": "abc"}
    out = Redactor(environ=env).data({"note": "cloned with ghp_plantedvalue0001 from /root"})
    assert out == {"note": f"cloned with {REDACTED} from /root"}


def test_extra_literal_secrets_and_nesting_bound():
    assert redact("x=planted-secret-999 y", ["planted-secret-999"], environ={}) == f"x={REDACTED} y"
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    redact(deep, environ={})   # bounded, no RecursionError
