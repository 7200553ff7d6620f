"""The twin's inference path: Triton-like replicas on G7 GPUs behind a regional NLB-style gateway.

Public API: `ServingFleet(world)` (replicas derived from the clusters' Kubernetes stores and the World's
physics; `freeze(pod, frozen)` for the cgroup freezer the exec handler drives) and `build_gateway_app(fleet)` (the Starlette
app the twin serves on world.serving_url).
"""
from harness.twin.serving.replicas import ServingFleet
from harness.twin.serving.gateway import build_gateway_app

__all__ = ["ServingFleet", "build_gateway_app"]
