"""The twin's endpoints file (reports/twin/endpoints.json), as written by `g7chaos twin up`.

This is the only thing the harness learns about the twin: addresses and a time scale. Everything after
goes through the kubernetes client, boto3 and HTTP, exactly as against a real deployment. Unknown fields
are ignored (not forbidden) so a newer twin can add endpoints without breaking an older harness; the
file is written by our own code, not by users, so strictness buys nothing here.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import TargetError

DEFAULT_ENDPOINTS_PATH = Path("reports/twin/endpoints.json")
TWIN_ACCESS_KEY = "testing"      # moto's well-known dummy credentials; not a secret
TWIN_SECRET_KEY = "testing"
TWIN_ACCOUNT_ID = "123456789012"


class TwinEndpoints(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    region: str = "us-east-2"
    time_scale: float = Field(30.0, gt=0)
    profile: str = "article"
    kubeconfig: str
    contexts: list[str] = Field(..., min_length=1)
    aws_endpoint: str
    aws_endpoints: dict[str, str] = Field(default_factory=dict)
    inference_url: str
    imds_url_template: str | None = None
    pid: int | None = None
    account_id: str = TWIN_ACCOUNT_ID
    flaky_api: float = Field(0.0, ge=0, lt=1)     # fraction of control-plane calls the twin fails

    @classmethod
    def read(cls, path: Path | str = DEFAULT_ENDPOINTS_PATH) -> TwinEndpoints:
        """Load the file; raises EndpointsError (exit 4 class: the target cannot be reached) when unusable."""
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise EndpointsError(f"cannot read twin endpoints file {path}: {exc.strerror or exc}") from None
        try:
            return cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise EndpointsError(f"twin endpoints file {path} is not valid: {str(exc).splitlines()[0]}") from None


class EndpointsError(TargetError):
    """The twin's endpoints file is missing or unusable: the target cannot be reached (exit 4)."""
