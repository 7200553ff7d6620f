"""In-process access to moto's backends and the twin's AWS identity.

moto's server thread answers boto3; the twin reads and adjusts the very same backend objects from its
asyncio loop. Those objects are plain Python containers mutated by the server thread, so every scan here
copies before iterating and retries if a concurrent request changed a dict mid-copy.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

ACCOUNT_ID = "123456789012"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"

T = TypeVar("T")


def backend(service: str, region: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)[ACCOUNT_ID][region]  # type: ignore[arg-type]


def snapshot(read: Callable[[], Iterable[T]], attempts: int = 5) -> list[T]:
    """Copy a collection the moto thread may be mutating; retry when it changed during the copy."""
    for _ in range(attempts - 1):
        try:
            return list(read())
        except RuntimeError:   # "dictionary changed size during iteration"
            continue
    return list(read())


def ec2_instances(region: str) -> list[Any]:
    ec2 = backend("ec2", region)
    return [i for r in snapshot(lambda: ec2.reservations.values()) for i in snapshot(lambda r=r: r.instances)]


def instance_arn(region: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{ACCOUNT_ID}:instance/{instance_id}"


def subnet_arn(region: str, subnet_id: str) -> str:
    return f"arn:aws:ec2:{region}:{ACCOUNT_ID}:subnet/{subnet_id}"


def boto3_client(service: str, endpoint_url: str, region: str, session: Any = None) -> Any:
    import boto3

    session = session or boto3.session.Session()
    return session.client(service, endpoint_url=endpoint_url, region_name=region,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
