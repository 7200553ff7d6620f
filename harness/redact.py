"""Removal of credentials from everything g7chaos shows or writes: report files, console lines, a target's
description, an error message printed by a command.

Reports are shared: attached to CI runs, pasted into tickets, uploaded as artefacts. A chaos run touches a
cluster and an AWS account, so error messages and evidence can carry a bearer token, an AWS secret key or a
kubeconfig's client key. Every writer in `harness.report` passes its final text through a `Redactor` before
it reaches disk; structured data is also redacted field by field first, so a value that the serialiser would
escape (JSON, XML, HTML) is caught before escaping changes its spelling. One redactor serves reports and
targets alike, so what counts as a secret is decided once.

Three layers, each catching what the others cannot:
1. patterns: `Bearer <token>`, JWTs, PEM private keys, AWS access key ids, URL passwords, and `key: value` /
   `key=value` pairs whose key names a secret (token, password, secret, client-key-data, session token, api
   key, authorization...);
2. literals: values of environment variables whose name contains SECRET, TOKEN, PASSWORD, PASSWD, KEY or
   CREDENTIAL (8+ chars), plus values read from kubeconfig files (token, password, client-key-data) and any
   added explicitly (a target adds its own kubeconfig's and AWS session's);
3. structured: dict entries whose key names a secret have their whole value replaced.

Keys are matched as whole words that end the key, so that figures such as `max_tokens` or `tokens_per_s`
survive, and values that are plainly not secrets (numbers, true/false/null) are left as they are.
"""
from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REDACTED = "[REDACTED]"

#: environment variable names whose values are treated as secrets
ENV_NAME_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
#: shorter values are too likely to occur by chance in ordinary text ("us", "true")
MIN_LITERAL_LENGTH = 8
#: nothing legitimate in a report nests deeper; deeper data is replaced whole rather than walked
MAX_DEPTH = 64

# A key that names a secret. Word boundaries keep `max_tokens` or `tokens_per_s` out: "token" must end the word.
_SECRET_KEY = (r"[\w.-]*(?:secret|token|password|passwd|passphrase|api[_-]?key|access[_-]?key(?:[_-]?id)?"
               r"|private[_-]?key|client-key-data|client_key_data|credentials?|authorization|cookie)")
_SECRET_KEY_RE = re.compile(rf"^{_SECRET_KEY}$", re.IGNORECASE)
_KEY_VALUE_RE = re.compile(
    rf"""(?P<key>["']?\b{_SECRET_KEY}\b["']?\s*(?:=|:)\s*)(?P<quote>["']?)(?P<value>[^\s"',;&}}\[\]<>\\]+)""",
    re.IGNORECASE)
_BEARER_RE = re.compile(r"(?P<prefix>\b(?:authorization\s*[:=]\s*(?:bearer|basic|token)\s+|bearer\s+))"
                        r"(?P<value>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_PEM_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
_AWS_KEY_ID_RE = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b")
_URL_PASSWORD_RE = re.compile(r"(?P<prefix>\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)(?P<value>[^@\s/]+)(?P<at>@)", re.IGNORECASE)
# values after a secret-named key that are not secrets: figures, YAML/JSON literals, an auth scheme's name (its
# credential is the bearer pattern's), and what was already redacted
_NOT_SECRET_VALUES = re.compile(r"^(?:[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?|true|false|null|none|bearer|basic"
                                r"|\[REDACTED\])$", re.IGNORECASE)
# kubeconfig user fields that hold secrets
_KUBECONFIG_SECRET_FIELDS = ("token", "password", "client-key-data", "client-key", "id-token", "refresh-token",
                             "access-token")


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (whole value is replaced)."""
    return bool(_SECRET_KEY_RE.match(name.strip()))


class Redactor:
    """Removes credentials from text and from nested data. Cheap to build; build one per report or target.

    `environ` (default: this process's environment) supplies secret-named variables' values and the kubeconfigs
    its KUBECONFIG names; `{}` means none.
    """

    def __init__(self, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None,
                 kubeconfigs: Iterable[str | Path] = ()):
        self._literals: set[str] = set()
        env = os.environ if environ is None else environ
        for name, value in env.items():
            if any(marker in name.upper() for marker in ENV_NAME_MARKERS):
                self.add_secret(value)
        kubeconfig_env = env.get("KUBECONFIG")
        paths = list(kubeconfigs)
        if kubeconfig_env:
            paths.extend(p for p in kubeconfig_env.split(os.pathsep) if p)
        for path in paths:
            self.add_kubeconfig(path)
        for secret in secrets:
            self.add_secret(secret)
        self._compiled: re.Pattern[str] | None = None

    def add_secret(self, value: str | None) -> None:
        """Treat this exact value (and its JSON/HTML-escaped spellings) as a secret everywhere."""
        if not isinstance(value, str) or len(value) < MIN_LITERAL_LENGTH:
            return
        for spelling in (value, json.dumps(value)[1:-1], html.escape(value, quote=True), html.escape(value, quote=False)):
            self._literals.add(spelling)
        self._compiled = None

    def add_kubeconfig(self, path: str | Path) -> None:
        """Add the secrets a kubeconfig file holds (tokens, passwords, client keys). Unreadable files are skipped:
        redaction must never be the reason a report is not written."""
        try:
            text = Path(path).read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return
        for user in (data or {}).get("users", []) if isinstance(data, dict) else []:
            fields = (user or {}).get("user") or {}
            if not isinstance(fields, dict):
                continue
            for name in _KUBECONFIG_SECRET_FIELDS:
                value = fields.get(name)
                if isinstance(value, str):
                    self.add_secret(value)
            provider = fields.get("auth-provider") or {}
            for name, value in ((provider.get("config") or {}) if isinstance(provider, dict) else {}).items():
                if isinstance(value, str) and is_secret_key(name):
                    self.add_secret(value)

    def _literal_re(self) -> re.Pattern[str] | None:
        if not self._literals:
            return None
        if self._compiled is None:
            ordered = sorted(self._literals, key=len, reverse=True)   # longest first: no partial leftovers
            self._compiled = re.compile("|".join(re.escape(s) for s in ordered))
        return self._compiled

    def text(self, text: str) -> str:
        """Redact one string."""
        if not text:
            return text
        literal = self._literal_re()
        if literal is not None:
            text = literal.sub(REDACTED, text)
        text = _PEM_RE.sub(REDACTED, text)
        text = _BEARER_RE.sub(lambda m: m.group("prefix") + REDACTED, text)
        text = _JWT_RE.sub(REDACTED, text)
        text = _URL_PASSWORD_RE.sub(lambda m: m.group("prefix") + REDACTED + m.group("at"), text)
        text = _KEY_VALUE_RE.sub(_redact_pair, text)
        text = _AWS_KEY_ID_RE.sub(REDACTED, text)
        return text

    def data(self, value: Any) -> Any:
        """Redact nested data (dicts, lists, tuples, strings, bytes); secret-named keys lose their whole value."""
        return self._walk(value, 0)

    def _walk(self, value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", errors="replace"))
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and is_secret_key(key) and _is_secret_value(item):
                    out[key] = REDACTED
                else:
                    out[key] = self._walk(item, depth + 1)
            return out
        if isinstance(value, tuple):
            return tuple(self._walk(item, depth + 1) for item in value)
        if isinstance(value, list):
            return [self._walk(item, depth + 1) for item in value]
        return value


def _is_secret_value(item: Any) -> bool:
    if isinstance(item, str):
        return bool(item) and not _NOT_SECRET_VALUES.match(item)
    return isinstance(item, (bytes, Mapping, list, tuple))


def _redact_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if _NOT_SECRET_VALUES.match(value):
        return match.group(0)
    return match.group("key") + match.group("quote") + REDACTED


def default_redactor(extra_secrets: Iterable[str] = ()) -> Redactor:
    """A redactor that knows this process's environment (and the kubeconfigs KUBECONFIG names)."""
    return Redactor(extra_secrets)


def redact(value: Any, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> Any:
    """Redact a dict/list/str (any nesting) once; `secrets` are extra literal values to remove."""
    return Redactor(secrets, environ=environ).data(value)
