"""The deployment's load balancer as elbv2 describes it: its ARN, its target groups and their health checks.

The target names the load balancer (`load_balancer.name`) and, optionally, its target groups by zone; anything
left out is discovered from the load balancer. Read-only calls (elasticloadbalancing:Describe*), shared by the
faults that read target health and the checks that need the deployment's health-check interval.
"""
from __future__ import annotations

from typing import Any


class LoadBalancerNotFound(LookupError):
    pass


def load_balancer_arn(target: Any) -> str:
    name = target.spec.load_balancer.name
    try:
        found = target.aws("elbv2").describe_load_balancers(Names=[name])["LoadBalancers"]
    except Exception as exc:
        raise LoadBalancerNotFound(f"load balancer {name!r} not found ({exc}); set load_balancer.name in the "
                                   f"target") from exc
    if not found:
        raise LoadBalancerNotFound(f"load balancer {name!r} not found; set load_balancer.name in the target")
    return found[0]["LoadBalancerArn"]


def target_groups(target: Any, load_balancer: str | None = None) -> list[dict[str, Any]]:
    """The target groups the target names, else every target group of its load balancer (`load_balancer` is its
    ARN when the caller already has it)."""
    elbv2 = target.aws("elbv2")
    named = list(target.spec.load_balancer.target_groups.values())
    if named:
        return elbv2.describe_target_groups(Names=named)["TargetGroups"]
    arn = load_balancer or load_balancer_arn(target)
    return elbv2.describe_target_groups(LoadBalancerArn=arn)["TargetGroups"]


def health_check_interval(target: Any) -> tuple[float, str] | None:
    """The longest HealthCheckIntervalSeconds of the deployment's target groups (deployment seconds) and the group
    that has it, or None when they cannot be read. The longest, because a replica behind any of them may wait
    that long for the probe that pulls it (FIDELITY ELB-1)."""
    try:
        groups = [g for g in target_groups(target) if g.get("HealthCheckIntervalSeconds")]
    except Exception:   # no load balancer, no permission, no AWS: the caller says the interval is unknown
        return None
    if not groups:
        return None
    longest = max(groups, key=lambda g: g["HealthCheckIntervalSeconds"])
    return float(longest["HealthCheckIntervalSeconds"]), longest.get("TargetGroupName", longest["TargetGroupArn"])
