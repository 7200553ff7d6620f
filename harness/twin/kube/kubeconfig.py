"""A kubeconfig with one context per twin cluster, as `aws eks update-kubeconfig` would write for EKS.

kubectl and the Python client both need a token-bearing user; the twin accepts any bearer token.
"""
from __future__ import annotations

import json
from pathlib import Path


def kubeconfig(servers: dict[str, str], *, current: str | None = None, token: str = "g7-twin") -> dict:
    """`servers` maps context (= cluster) name to its API base URL."""
    names = list(servers)
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
        "users": [{"name": "twin-admin", "user": {"token": token}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "twin-admin"}} for n in names],
        "current-context": current or (names[0] if names else ""),
    }


def write_kubeconfig(path: str | Path, servers: dict[str, str], *, current: str | None = None) -> Path:
    """Write it as JSON (valid YAML, so every kubeconfig reader takes it) with owner-only permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kubeconfig(servers, current=current), indent=2))
    path.chmod(0o600)
    return path
