"""Remove credentials from anything that may end up in a report, a journal or a console.

Reports are shared (CI artifacts, tickets), so they must never carry a bearer token, an AWS key, a
kubeconfig's client key or a password, however they got there: as a dict value under a tell-tale key, inside
free text (an exception message that echoes a header), or as the literal value of a secret we know about
(the environment's *SECRET*/*TOKEN*/*PASSWORD*/*KEY* variables and the target's kubeconfig credentials).

Keys are matched as whole words so that metrics such as `prompt_tokens` or `max_tokens` survive.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***REDACTED***"
MIN_SECRET_LEN = 8
_SENSITIVE_WORDS = ("token", "secret", "password", "passwd", "credential", "credentials", "authorization",
                    "cookie", "apikey", "api-key", "api_key", "private-key", "private_key", "client-key-data",
                    "client_key_data", "access_key", "access-key", "secret_key", "session_token",
                    "aws_secret_access_key", "aws_access_key_id", "aws_session_token", "id-token", "refresh-token",
                    "x-amz-security-token")
_SENSITIVE_KEY_RE = re.compile(
    r"(^|[-_.\s])(" + "|".join(re.escape(w) for w in sorted(_SENSITIVE_WORDS, key=len, reverse=True)) + r")($|[-_.\s])",
    re.IGNORECASE)
_SECRET_ENV_RE = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)
_TEXT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)((?:secret|token|password|passwd|client-key-data|client_key_data|secretaccesskey|sessiontoken)"
                r"[A-Za-z0-9_-]*[\"']?\s*[:=]\s*[\"']?)([^\s\"',;}]{4,})"), r"\1" + REDACTED),
    (re.compile(r"(://[^/\s:@]+:)([^@\s/]+)@"), r"\1" + REDACTED + "@"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), REDACTED),
]


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY_RE.search(key))


def env_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secret (8+ characters)."""
    env = os.environ if env is None else env
    return [value for name, value in env.items() if _SECRET_ENV_RE.search(name) and len(value) >= MIN_SECRET_LEN]


class Redactor:
    """Redacts known secret values plus everything that looks like a credential."""

    def __init__(self, secrets: Iterable[str] = (), *, include_env: bool = True,
                 env: Mapping[str, str] | None = None) -> None:
        known = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN}
        if include_env:
            known.update(env_secrets(env))
        # longest first, so a secret that contains another is removed whole
        self._secrets = sorted(known, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for pattern, replacement in _TEXT_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def __call__(self, value: Any) -> Any:
        return self._walk(value, 0)

    def _walk(self, value: Any, depth: int) -> Any:
        if depth > 64:
            return REDACTED   # nothing legitimate in a report nests this deep
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", errors="replace"))
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and is_sensitive_key(key) and item is not None \
                        and not isinstance(item, (bool, Mapping, list, tuple)):
                    out[key] = REDACTED
                else:
                    out[key] = self._walk(item, depth + 1)
            return out
        if isinstance(value, (list, tuple)):
            return type(value)(self._walk(item, depth + 1) for item in value)
        return value


def redact(value: Any, secrets: Iterable[str] = (), *, env: Mapping[str, str] | None = None) -> Any:
    """Redact a dict/list/str (any nesting) for a report; `secrets` are extra literal values to remove."""
    return Redactor(secrets, env=env)(value)
