"""Scenario variants a user would write, each with the verdict the article implies.

Users do not run the shipped scenarios unchanged: they move a fault to the other zone or GPU, start it earlier,
switch to the chat endpoint, change a stall's mode, or compose two faults into one game day. A verdict that
holds only for the nine shipped files is no verdict. This module draws such variants with hypothesis, seeded, so
a failing draw is reproduced by its seed and position, and says for each one what the run must conclude:

- on `article` (every prescription followed), a pass;
- on the profile that breaks the property the scenario is about, a failure through exactly the checks of that
  property (the matrix's diagonal, `BREAKS` below), and through no other check.

A variant only changes what the expected verdict does not depend on: the zone and node a fault picks, the GPU,
when it starts (earlier, so the recovery only gets longer), the endpoint, a stall's symptom, the load a little
lighter where the property does not hinge on saturation. Compositions put two faults on nodes of different
zones, each check scoped to the faults it judges, so each profile still breaks one property of one fault.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
ZONES = ("us-east-2a", "us-east-2b")

# scenario -> profile -> the checks that profile must fail (and no other): the verdict matrix's diagonal
BREAKS: dict[str, dict[str, frozenset[str]]] = {
    "az-loss": {"single-multi-az-cluster": frozenset({"traffic-failover"})},
    "cold-start": {"cold-start-from-s3": frozenset({"capacity-restored", "recovery-time"}),
                   "plugin-before-driver": frozenset({"capacity-restored", "recovery-time"})},
    "device-plugin-race": {"plugin-before-driver": frozenset({"no-silent-capacity-loss"})},
    "ecc-double-bit-error": {"no-dbe-remediation": frozenset({"node-drained", "node-replaced",
                                                              "no-corrupted-responses"}),
                             "no-dbe-alarm": frozenset({"alarm-fired"})},
    "efa-saturation": {"no-placement-group": frozenset({"slo"}), "no-efa-monitoring": frozenset({"alarm-fired"})},
    "gpu-thermal-throttle": {"no-gpu-temp-alarm": frozenset({"alarm-fired"})},
    "retry-storm": {"no-idempotency": frozenset({"idempotent-retries"})},
    "scale-on-saturation": {"gpu-util-autoscaling": frozenset({"slo"})},
    "spot-interruption": {"no-kv-offload": frozenset({"session-continuity"})},
}
# what a variant may change per scenario (a dimension absent here would move the expected verdict)
NODE_FAULTS = ("ecc-double-bit-error", "gpu-thermal-throttle", "spot-interruption", "device-plugin-race")
GPU_FAULTS = ("ecc-double-bit-error", "gpu-thermal-throttle")
LIGHTER_LOAD = ("ecc-double-bit-error", "gpu-thermal-throttle", "spot-interruption", "retry-storm", "az-loss",
                "device-plugin-race", "cold-start")
# composed game days: (first scenario, second scenario); their faults go to nodes of different zones
COMPOSITIONS = (("ecc-double-bit-error", "spot-interruption"),)


@dataclass
class Variant:
    """One drawn scenario, the profile it runs on, and the checks that must fail there (empty: a pass)."""

    name: str
    base: tuple[str, ...]
    scenario: dict[str, Any]
    profile: str
    must_fail: frozenset[str]
    changes: list[str] = field(default_factory=list)

    @property
    def expected(self) -> str:
        return "pass" if not self.must_fail else "fail: " + ", ".join(sorted(self.must_fail))

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.scenario['name']}.yaml"
        path.write_text(f"# variant {self.name}: {'; '.join(self.changes) or 'as shipped'}\n"
                        + yaml.safe_dump(self.scenario, sort_keys=False))
        return path


def shipped(name: str) -> dict[str, Any]:
    """A shipped scenario as plain data, read as the harness reads it (YAML 1.1's `on` stays a key)."""
    from harness.strict.yamlsafe import parse_yaml
    path = SCENARIOS / f"{name}.yaml"
    return parse_yaml(path.read_text(), str(path)).data


def _fault(step: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = next(k for k in step if k not in ("at", "duration"))
    if step[kind] is None:
        step[kind] = {}
    return kind, step[kind]


@st.composite
def single_variants(draw: st.DrawFn) -> Variant:
    base = draw(st.sampled_from(sorted(BREAKS)))
    doc = shipped(base)
    changes: list[str] = []
    profile = draw(st.sampled_from(["article", *sorted(BREAKS[base])]))
    step = doc["faults"][0]
    kind, params = _fault(step)
    if kind in NODE_FAULTS and isinstance(params.get("node"), dict):
        zone = draw(st.sampled_from(ZONES))
        pick = draw(st.sampled_from(["random", "first"]))
        params["node"] = {**params["node"], "zone": zone, "pick": pick}
        if pick == "random":
            params["node"]["seed"] = draw(st.integers(0, 2**16))
        changes.append(f"node in {zone} ({pick})")
    if kind in GPU_FAULTS and params.get("gpu") != "all":
        params["gpu"] = draw(st.integers(0, 7))
        changes.append(f"gpu {params['gpu']}")
    if kind == "az-loss":
        params["zone"] = draw(st.sampled_from(ZONES))
        changes.append(f"zone {params['zone']}")
    if kind == "spot-interruption" and params.get("notice") in ("2m", 120) and draw(st.booleans()):
        # a longer notice puts FIS's rebalance recommendation first: the handler cordons then, drains on the
        # interruption notice 2 minutes before the end, so the drain and replacement limits grow with the notice
        notice = draw(st.sampled_from([3, 4]))
        params.update({"notice": f"{notice}m", "rebalance_first": True})
        doc["duration"] = f"{int(_seconds(doc['duration']) // 60) + notice - 2}m"
        for entry in doc["checks"]:
            name, check = next(iter(entry.items()))
            if name in ("node-drained", "node-replaced") and isinstance(check, dict) and "within" in check:
                check["within"] = f"{int(_seconds(check['within']) + (notice - 2) * 60 + (60 if name == 'node-drained' else 0))}s"
        changes.append(f"notice {notice}m, rebalance first")
    if kind == "replica-stall" and params.get("mode") in ("before-first-token", "mid-stream"):
        params["mode"] = draw(st.sampled_from(["before-first-token", "mid-stream"]))
        changes.append(f"stall {params['mode']}")
    at = _seconds(step["at"])
    earlier = draw(st.sampled_from([0, 15, 30]))
    if earlier and at - earlier >= 60:
        step["at"] = f"{int(at - earlier)}s"
        changes.append(f"at {step['at']}")
    load = doc.setdefault("load", {})
    if base in LIGHTER_LOAD and load.get("users", 32) >= 8:
        users = draw(st.integers(int(load.get("users", 32) * 0.75), int(load.get("users", 32))))
        if users != load.get("users"):
            load["users"] = users
            changes.append(f"{users} users")
    if not load.get("conversations") and load.get("arrival", "closed") == "closed":
        load["chat"] = draw(st.booleans())
        if load["chat"]:
            changes.append("chat endpoint")
    index = draw(st.integers(0, 9999))
    doc["name"] = f"{base}-v{index}"
    return Variant(doc["name"], (base,), doc, profile, BREAKS[base].get(profile, frozenset()), changes)


@st.composite
def composed_variants(draw: st.DrawFn) -> Variant:
    first, second = draw(st.sampled_from(COMPOSITIONS))
    a, b = shipped(first), shipped(second)
    zone_a = draw(st.sampled_from(ZONES))
    zone_b = ZONES[1 - ZONES.index(zone_a)]
    step_a, step_b = copy.deepcopy(a["faults"][0]), copy.deepcopy(b["faults"][0])
    for step, zone in ((step_a, zone_a), (step_b, zone_b)):
        _, params = _fault(step)
        if isinstance(params.get("node"), dict):
            params["node"] = {**params["node"], "zone": zone}
    step_a["at"] = "1m"
    step_b["at"] = draw(st.sampled_from(["3m", "210s"]))
    kind_a, kind_b = _fault(step_a)[0], _fault(step_b)[0]
    checks: list[dict[str, Any]] = []
    seen: set[str] = set()
    for doc, kind, position in ((a, kind_a, 0), (b, kind_b, 1)):
        for entry in doc["checks"]:
            name, params = next(iter(entry.items()))
            params = dict(params or {})
            if name in ("slo", "idempotent-retries"):
                if name in seen:
                    continue
            elif name not in ("fault-landed",):
                params["faults"] = [position]
            elif name in seen:
                continue
            seen.add(name)
            checks.append({name: params})
    profile = draw(st.sampled_from(["article", *sorted(BREAKS[first]), *sorted(BREAKS[second])]))
    must_fail = BREAKS[first].get(profile, frozenset()) | BREAKS[second].get(profile, frozenset())
    load = copy.deepcopy(b["load"] if b["load"].get("conversations") else a["load"])
    if a["load"].get("canary"):
        load["canary"] = a["load"]["canary"]
    index = draw(st.integers(0, 9999))
    name = f"{first}-then-{second}-v{index}"
    doc = {"name": name, "description": f"{first} in {zone_a}, then {second} in {zone_b}, in one game day",
           "target": "twin", "duration": "8m", "load": load, "steady_state": a.get("steady_state", {}),
           "faults": [step_a, step_b], "checks": checks, "stop_when": a.get("stop_when", []),
           "blast_radius": {"max_nodes": 2, "max_gpus": 16}}
    return Variant(name, (first, second), doc, profile, must_fail,
                   [f"{kind_a} in {zone_a} at 1m", f"{kind_b} in {zone_b} at {step_b['at']}"])


def variants() -> st.SearchStrategy[Variant]:
    """Mostly single-fault variants, about one in five a composition."""
    return st.one_of(single_variants(), single_variants(), single_variants(), single_variants(), composed_variants())


def draw_variants(seed_value: int, count: int) -> list[Variant]:
    """`count` variants, the same ones for the same seed: hypothesis's generation phase alone, no shrinking and no
    example database, so nothing but the seed decides what is drawn."""
    drawn: list[Variant] = []

    @seed(seed_value)
    @settings(max_examples=count * 3, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(variants())
    def collect(variant: Variant) -> None:
        if len(drawn) < count and variant.name not in {v.name for v in drawn}:
            drawn.append(variant)

    collect()
    for position, variant in enumerate(drawn):
        variant.name = f"s{seed_value}-{position:03d}-{variant.name}"
        variant.scenario["name"] = f"v{position:03d}-{variant.scenario['name']}"[:63].rstrip("-")
    return drawn


def _seconds(value: Any) -> float:
    from harness.strict.units import parse_duration
    return parse_duration(value)
