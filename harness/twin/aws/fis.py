"""AWS FIS experiments that act.

moto records templates and experiments but no action ever acts, tag-selected targets are never resolved
and an experiment "completes" after a few reads. The twin pins moto's experiment state machine and drives
it itself: a new experiment is picked up, its stop conditions are checked, its targets resolved
(resourceArns, resourceTags, filters, selectionMode ALL / COUNT(n) / PERCENT(n)) through the EC2 API, and
its actions run on the twin's clock (durations are real-world ISO 8601 and scaled by time_scale), in
startAfter order. The experiment then reads running -> completed, or stopped when stop_experiment is called
or a stop-condition alarm goes to ALARM; stopping reverts what can be reverted (network restored, stopped
instances started). Instance actions go through the EC2 API, so the hooks learn of them like of any
other API call; spot notices and connectivity changes go to the hooks directly.

CreateExperimentTemplate rejects what the real FIS rejects, with its ValidationException, before moto records
anything (`validate_template`): a target of more than 5 resourceArns (botocore's fis model), a target with both
or neither of resourceArns and resourceTags, a selectionMode other than ALL / COUNT(n) / PERCENT(n), and for
every action the twin runs: an unknown parameter, a missing required one, a value outside the range the FIS
actions reference documents (one table, `PARAMETER_RULES`), a target key the action does not have, a target
name the template does not define, or a target whose resourceType is not the one the action's key takes.

EBS actions (aws:ebs:pause-volume-io, aws:ebs:volume-io-latency) resolve aws:ec2:ebs-volume targets through
describe_volumes and act on the nodes the volumes are attached to (every instance has its root volume):
while one runs, every read on that node's volume waits the added latency (or never returns, paused), which
is what stalls a replica whose request path reads from the volume. Ending or stopping the action lifts it.
"""
from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.twin import hardware
from harness.twin.aws import backends
from harness.twin.aws.asg import ScalingGroups
from harness.twin.aws.hooks import AwsHooks
from harness.twin.aws.instances import InstanceWatcher
from harness.twin.clock import TwinClock
from harness.twin.world import World

log = logging.getLogger(__name__)

TERMINAL = ("completed", "stopped", "failed")
SPOT = "aws:ec2:send-spot-instance-interruptions"
DISRUPT = "aws:network:disrupt-connectivity"
REBOOT = "aws:ec2:reboot-instances"
STOP = "aws:ec2:stop-instances"
TERMINATE = "aws:ec2:terminate-instances"
WAIT = "aws:fis:wait"
PAUSE_IO = "aws:ebs:pause-volume-io"
IO_LATENCY = "aws:ebs:volume-io-latency"
SUPPORTED = (SPOT, DISRUPT, REBOOT, STOP, TERMINATE, WAIT, PAUSE_IO, IO_LATENCY)
TARGET_KEY = {SPOT: "SpotInstances", DISRUPT: "Subnets", REBOOT: "Instances", STOP: "Instances",
              TERMINATE: "Instances", PAUSE_IO: "Volumes", IO_LATENCY: "Volumes"}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
# FIDELITY SPOT-1: durationBeforeInterruption is the time from the action's start to the interruption, PT2M..PT15M;
# the rebalance recommendation comes at once, the interruption notice SPOT_NOTICE_S before the interruption.
SPOT_MIN_S, SPOT_MAX_S = 120.0, 900.0
SPOT_NOTICE_S = hardware.SPOT_NOTICE_S


def parse_duration(text: str) -> float:
    """ISO 8601 duration (PT2M, PT1H30M, PT90S) in real-world seconds."""
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    days, hours, minutes, seconds = match.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0))


def volume_arn(region: str, volume_id: str) -> str:
    return f"arn:aws:ec2:{region}:{backends.ACCOUNT_ID}:volume/{volume_id}"


def _read_latency_s(parameters: dict[str, str]) -> float:
    """What aws:ebs:volume-io-latency adds to the mean read: the latency times the share of reads it hits
    (the twin's readers see the mean, not the spread)."""
    try:
        share = float(parameters.get("readIOPercentage", "100")) / 100.0
        latency_ms = float(parameters.get("readIOLatencyMilliseconds", "100"))     # the reference's default
    except (KeyError, ValueError) as exc:
        raise ExperimentFailed(f"aws:ebs:volume-io-latency needs readIOPercentage and "
                               f"readIOLatencyMilliseconds: {exc}") from exc
    if not (0.001 <= share <= 1.0 and 1 <= latency_ms <= 60000):
        raise ExperimentFailed("readIOPercentage must be 0.1..100 and readIOLatencyMilliseconds 1..60000")
    return share * latency_ms / 1000.0


def walk(obj: Any, path: list[str]) -> list[Any]:
    """Values at a dotted FIS filter path in an API-shaped record; lists on the way are flattened."""
    if isinstance(obj, list):
        return [v for item in obj for v in walk(item, path)]
    if not path:
        return [obj]
    if not isinstance(obj, dict) or path[0] not in obj:
        return []
    return walk(obj[path[0]], path[1:])


def select(candidates: list[str], mode: str, rng: Any) -> list[str]:
    mode = (mode or "ALL").strip().upper()
    if mode == "ALL":
        return candidates
    match = re.fullmatch(r"(COUNT|PERCENT)\((\d+)\)", mode)
    if not match:
        raise ValueError(f"unsupported selectionMode {mode!r}")
    n = int(match.group(2))
    count = n if match.group(1) == "COUNT" else math.ceil(len(candidates) * n / 100)
    if count > len(candidates) and match.group(1) == "COUNT":
        raise ValueError(f"selectionMode {mode} but only {len(candidates)} target(s) found")
    return sorted(rng.sample(candidates, min(count, len(candidates))))


# What the twin's FIS can run, as get_action / list_actions describe it (moto answers neither).
# FIDELITY FIS-5: each action's target key and the one resource type it takes, from the FIS actions reference.
ACTION_CATALOGUE: dict[str, dict[str, Any]] = {
    SPOT: {"description": "Send a spot instance interruption notice to target spot instances; they are "
                          "interrupted when durationBeforeInterruption ends.",
           "targets": {"SpotInstances": "aws:ec2:spot-instance"},
           "parameters": {"durationBeforeInterruption": ("Time before the instances are interrupted, PT2M..PT15M.",
                                                         True)}},
    DISRUPT: {"description": "Deny traffic to and from the target subnets for the duration.",
              "targets": {"Subnets": "aws:ec2:subnet"},
              "parameters": {"duration": ("How long the disruption lasts, ISO 8601.", True),
                             "scope": ("all | availability-zone | dynamodb | prefix-list | s3 | s3express | vpc.",
                                       False),
                             "prefixListIdentifier": ("The customer managed prefix list, for scope prefix-list.",
                                                      False)}},
    REBOOT: {"description": "Reboot the target instances.", "targets": {"Instances": "aws:ec2:instance"},
             "parameters": {}},
    STOP: {"description": "Stop the target instances, and start them again after startInstancesAfterDuration.",
           "targets": {"Instances": "aws:ec2:instance"},
           "parameters": {"startInstancesAfterDuration": ("Time before the instances are started again.", False),
                          "completeIfInstancesTerminated": ("Complete if the instances were terminated.", False)}},
    TERMINATE: {"description": "Terminate the target instances.", "targets": {"Instances": "aws:ec2:instance"},
                "parameters": {}},
    PAUSE_IO: {"description": "Pause I/O between the target EBS volumes and the instances they are attached to.",
               "targets": {"Volumes": "aws:ec2:ebs-volume"},
               "parameters": {"duration": ("How long I/O stays paused, ISO 8601 (up to PT12H).", True)}},
    IO_LATENCY: {"description": "Add latency to a share of the read and write I/O of the target EBS volumes.",
                 "targets": {"Volumes": "aws:ec2:ebs-volume"},
                 "parameters": {"readIOPercentage": ("Share of read I/O that gets the latency, 0.1..100.", False),
                                "readIOLatencyMilliseconds": ("Latency added to those reads, 1..60000 ms.", False),
                                "writeIOPercentage": ("Share of write I/O that gets the latency, 0.1..100.", False),
                                "writeIOLatencyMilliseconds": ("Latency added to those writes, 1..60000 ms.", False),
                                "duration": ("How long the latency lasts, ISO 8601.", True)}},
    WAIT: {"description": "Wait for the duration.", "targets": {},
           "parameters": {"duration": ("How long to wait, ISO 8601.", True)}},
}


MAX_ARNS_PER_TARGET = 5     # FIDELITY FIS-1: botocore fis model, CreateExperimentTemplateTargetInput.resourceArns max 5
HOURS_12 = 12 * 3600.0


@dataclass(frozen=True)
class Param:
    """What one action parameter accepts: an ISO 8601 duration or a number within [low, high], or one of
    `choices`, or any non-empty text."""

    kind: str                                  # duration | number | choice | text
    low: float = 0.0
    high: float = math.inf
    choices: tuple[str, ...] = ()


# FIDELITY FIS-3: the parameters of every action the twin runs and the values the FIS actions reference documents
# for them (https://docs.aws.amazon.com/fis/latest/userguide/fis-actions-reference.html). The only place a range
# lives: a parameter not listed here is unknown, a value outside its range is a ValidationException at
# CreateExperimentTemplate. Required-ness comes from ACTION_CATALOGUE.
PARAMETER_RULES: dict[str, dict[str, Param]] = {
    SPOT: {"durationBeforeInterruption": Param("duration", 120.0, 900.0)},               # PT2M..PT15M
    DISRUPT: {"duration": Param("duration", 60.0, HOURS_12),                             # PT1M..PT12H
              "scope": Param("choice", choices=("all", "availability-zone", "dynamodb", "prefix-list", "s3",
                                                "s3express", "vpc")),
              "prefixListIdentifier": Param("text")},
    REBOOT: {},
    STOP: {"startInstancesAfterDuration": Param("duration", 60.0, HOURS_12),             # PT1M..PT12H
           "completeIfInstancesTerminated": Param("choice", choices=("true", "false"))},
    TERMINATE: {},
    PAUSE_IO: {"duration": Param("duration", 1.0, HOURS_12)},                            # PT1S..PT12H
    IO_LATENCY: {"readIOPercentage": Param("number", 0.1, 100.0),
                 "readIOLatencyMilliseconds": Param("number", 1.0, 60000.0),             # 1 ms (io2) / 10 ms .. 60 s
                 "writeIOPercentage": Param("number", 0.1, 100.0),
                 "writeIOLatencyMilliseconds": Param("number", 1.0, 60000.0),
                 "duration": Param("duration", 1.0, HOURS_12)},                          # PT1S..PT12H
    WAIT: {"duration": Param("duration", 60.0, HOURS_12)},                               # PT1M..PT12H
}
_SELECTION_MODE = re.compile(r"^(ALL|COUNT\((\d+)\)|PERCENT\((\d+)\))$")


class TemplateInvalid(ValueError):
    """What FIS answers a malformed CreateExperimentTemplate with (ValidationException)."""


def _check_value(action_id: str, name: str, value: Any, rule: Param) -> None:
    text = str(value).strip()
    where = f"parameter {name} of {action_id}"
    if not text:
        raise TemplateInvalid(f"The value of {where} is empty")
    if rule.kind == "choice":
        if text not in rule.choices:
            raise TemplateInvalid(f"The value {text!r} of {where} is not one of {', '.join(rule.choices)}")
        return
    if rule.kind == "text":
        return
    try:
        number = parse_duration(text) if rule.kind == "duration" else float(text)
    except ValueError:
        raise TemplateInvalid(f"The value {text!r} of {where} is not "
                              f"{'an ISO 8601 duration' if rule.kind == 'duration' else 'a number'}") from None
    if not rule.low <= number <= rule.high:
        raise TemplateInvalid(f"The value {text!r} of {where} is out of range ({rule.low:g}..{rule.high:g}"
                              f"{' s' if rule.kind == 'duration' else ''})")


def validate_template(targets: dict[str, Any], actions: dict[str, Any]) -> None:
    """Raise TemplateInvalid for what the real CreateExperimentTemplate rejects (see the module docstring).
    Actions the twin does not run are left for the experiment to fail on, as before: their rules are not known."""
    for name, target in (targets or {}).items():
        arns = list(target.get("resourceArns") or [])
        tags = dict(target.get("resourceTags") or {})
        if len(arns) > MAX_ARNS_PER_TARGET:
            raise TemplateInvalid(f"1 validation error detected: Value at 'targets.{name}.member.resourceArns' "
                                  f"failed to satisfy constraint: Member must have length less than or equal "
                                  f"to {MAX_ARNS_PER_TARGET}")
        if bool(arns) == bool(tags) and not target.get("parameters"):      # FIDELITY FIS-2
            raise TemplateInvalid(f"Target {name}: specify resourceArns or resourceTags, not "
                                  f"{'both' if arns else 'neither'}")
        mode = str(target.get("selectionMode") or "")
        match = _SELECTION_MODE.match(mode)
        number = int(match.group(2) or match.group(3) or 1) if match else 0
        if not match or number < 1 or (match.group(3) is not None and number > 100):
            raise TemplateInvalid(f"Target {name}: selectionMode {mode!r} is not ALL, COUNT(n) or PERCENT(n)")
    for name, action in (actions or {}).items():
        action_id = action.get("actionId", "")
        for after in action.get("startAfter") or []:
            if after not in actions:
                raise TemplateInvalid(f"Action {name} starts after {after}, which the template does not define")
        if action_id not in PARAMETER_RULES:
            continue
        rules, catalogue = PARAMETER_RULES[action_id], ACTION_CATALOGUE[action_id]
        parameters = dict(action.get("parameters") or {})
        unknown = sorted(set(parameters) - set(rules))
        if unknown:
            raise TemplateInvalid(f"Action {name}: {action_id} has no parameter {', '.join(unknown)}")
        missing = sorted(p for p, (_text, required) in catalogue["parameters"].items()
                         if required and p not in parameters)
        if missing:
            raise TemplateInvalid(f"Action {name}: {action_id} requires parameter {', '.join(missing)}")
        for parameter, value in parameters.items():
            _check_value(action_id, parameter, value, rules[parameter])
        keys: dict[str, str] = catalogue["targets"]
        given = dict(action.get("targets") or {})
        if keys and not given:
            raise TemplateInvalid(f"Action {name}: {action_id} needs a {', '.join(keys)} target")
        for key, target_name in given.items():
            if key not in keys:
                raise TemplateInvalid(f"Action {name}: {action_id} has no target key {key} "
                                      f"({', '.join(keys) or 'it takes no target'})")
            if target_name not in (targets or {}):
                raise TemplateInvalid(f"Action {name}: target {target_name} is not defined in the template")
            kind = (targets or {})[target_name].get("resourceType")
            if kind != keys[key]:
                raise TemplateInvalid(f"Action {name}: target {target_name} has resourceType {kind}, but "
                                      f"{action_id} takes {keys[key]} for {key}")


def install_template_validation() -> None:
    """CreateExperimentTemplate answers ValidationException as FIS does, before moto records the template."""
    from moto.core.exceptions import JsonRESTError
    from moto.fis.models import FISBackend

    if getattr(FISBackend.create_experiment_template, "_validated", False):
        return
    create = FISBackend.create_experiment_template

    def create_experiment_template(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            validate_template(kwargs.get("targets") or {}, kwargs.get("actions") or {})
        except TemplateInvalid as exc:
            raise JsonRESTError("ValidationException", str(exc)) from None
        return create(self, *args, **kwargs)

    create_experiment_template._validated = True  # type: ignore[attr-defined]
    FISBackend.create_experiment_template = create_experiment_template  # type: ignore[method-assign]


def _action_json(action_id: str, region: str, full: bool) -> dict[str, Any]:
    entry = ACTION_CATALOGUE[action_id]
    out: dict[str, Any] = {
        "id": action_id, "arn": f"arn:aws:fis:{region}:{backends.ACCOUNT_ID}:action/{action_id}",
        "description": entry["description"], "tags": {},
        "targets": {key: {"resourceType": kind} for key, kind in entry["targets"].items()}}
    if full:
        out["parameters"] = {name: {"description": text, "required": required}
                             for name, (text, required) in entry["parameters"].items()}
    return out


def install_action_catalogue() -> None:
    """Answer fis get_action / list_actions (moto 500s) with the actions the twin implements."""
    import json

    from moto.fis.exceptions import ResourceNotFoundException
    from moto.fis.responses import FISResponse

    if "list_actions" in vars(FISResponse):
        return

    def list_actions(self: Any) -> str:
        return json.dumps({"actions": [_action_json(a, self.region, False) for a in ACTION_CATALOGUE]})

    def get_action(self: Any) -> str:
        action_id = self._get_param("id") or self.path.rsplit("/", 1)[-1]
        if action_id not in ACTION_CATALOGUE:
            raise ResourceNotFoundException(f"Action {action_id} does not exist")
        return json.dumps({"action": _action_json(action_id, self.region, True)})

    FISResponse.list_actions = list_actions  # type: ignore[attr-defined]
    FISResponse.get_action = get_action  # type: ignore[attr-defined]


class ExperimentFailed(Exception):
    pass


@dataclass
class ActionRun:
    name: str
    action_id: str
    parameters: dict[str, str]
    targets: dict[str, str]
    start_after: list[str]
    state: str = "pending"
    reason: str = "Action is pending"
    started_at: float | None = None
    ended_at: float | None = None
    ends_at: float | None = None
    on_end: Callable[[], Any] | None = None      # what ending (or stopping) this action undoes


@dataclass
class Run:
    experiment: Any
    actions: dict[str, ActionRun]
    resolved: dict[str, list[str]] = field(default_factory=dict)     # target name -> resource ids
    reason: str | None = None


class FisEngine:
    def __init__(self, world: World, region: str, clock: TwinClock, hooks: AwsHooks, watcher: InstanceWatcher,
                 groups: ScalingGroups, ec2_client: Any) -> None:
        self.world = world
        self.region = region
        self.clock = clock
        self.hooks = hooks
        self.watcher = watcher
        self.groups = groups
        self.ec2 = ec2_client
        self.runs: dict[str, Run] = {}
        self.spot_terminations: dict[str, float] = {}      # instance id -> wall time, not revertable
        self.spot_notices: dict[str, tuple[float, float]] = {}   # instance id -> (notice, interruption) wall
        self._disruptions: dict[str, int] = {}              # subnet -> active disrupting actions
        self._volume_io: dict[str, dict[int, float]] = {}    # node -> {action run id: added read latency (s)}

    @staticmethod
    def install() -> None:
        """Experiments change state only when the twin says so (moto would complete them after a few reads)."""
        from moto.moto_api import state_manager

        state_manager.set_transition(model_name="fis::experiment",
                                     transition={"progression": "manual", "times": 10**12})
        install_action_catalogue()
        install_template_validation()

    def _fis(self) -> Any:
        return backends.backend("fis", self.region)

    # -- the loop ------------------------------------------------------------------------------------------
    async def tick(self, now: float) -> None:
        for experiment in backends.snapshot(lambda: self._fis().experiments.values()):
            if experiment.id not in self.runs and experiment.status not in TERMINAL:
                try:
                    await self._begin(experiment, now)
                except Exception as exc:
                    log.exception("experiment %s", experiment.id)
                    await self._finish(self.runs[experiment.id], "failed", f"Experiment failed: {exc}")
        for run in list(self.runs.values()):
            if run.experiment.status in TERMINAL:
                continue
            try:
                await self._advance(run, now)
            except Exception as exc:
                log.exception("experiment %s", run.experiment.id)
                await self._finish(run, "failed", f"Experiment failed: {exc}")
        self._send_due_notices(now)
        for instance_id, at in list(self.spot_terminations.items()):
            if at <= now:
                del self.spot_terminations[instance_id]
                await asyncio.to_thread(self._terminate, [instance_id])
                self._mark_spot_interrupted(instance_id)

    def _mark_spot_interrupted(self, instance_id: str) -> None:
        """describe_instances shows why the instance went, as EC2 does for a spot interruption."""
        from moto.ec2.models.instances import StateReason

        instance = backends.backend("ec2", self.region).get_instance_by_id(instance_id)
        if instance is not None:
            instance.state_reason = StateReason("Server.SpotInstanceTermination: Spot instance termination",
                                                "Server.SpotInstanceTermination")
            instance._reason = "Server.SpotInstanceTermination"

    def _terminate(self, instance_ids: list[str]) -> None:
        live = [i for i in instance_ids if i in self.watcher.instances and not self.watcher.instances[i].gone]
        if live:
            self.ec2.terminate_instances(InstanceIds=live)

    async def _begin(self, experiment: Any, now: float) -> None:
        actions = {name: ActionRun(name, a.get("actionId", ""), dict(a.get("parameters") or {}),
                                   dict(a.get("targets") or {}), list(a.get("startAfter") or []))
                   for name, a in (experiment.actions or {}).items()}
        run = Run(experiment, actions)
        self.runs[experiment.id] = run
        self._attach(run)
        if experiment.status == "stopping":        # stopped before the twin picked it up
            await self._finish(run, "stopped", "Experiment stopped")
            return
        experiment.status = "initiating"
        try:
            tripped = self._tripped_stop_condition(experiment)
            if tripped:
                raise ExperimentFailed(f"Stop condition {tripped} was in ALARM when the experiment started")
            unsupported = [a.action_id for a in actions.values() if a.action_id not in SUPPORTED]
            if unsupported:
                raise ExperimentFailed(f"Action(s) not supported by the twin: {', '.join(unsupported)}")
            run.resolved = await asyncio.to_thread(self._resolve_all, experiment)
        except (ExperimentFailed, ValueError) as exc:
            await self._finish(run, "failed", str(exc))
            return
        if experiment.status == "stopping":        # stop_experiment arrived while targets were resolved
            await self._finish(run, "stopped", "Experiment stopped")
            return
        experiment.status = "running"
        await self._advance(run, now)

    async def _advance(self, run: Run, now: float) -> None:
        experiment = run.experiment
        if experiment.status == "stopping":
            await self._finish(run, "stopped", "Experiment stopped")
            return
        tripped = self._tripped_stop_condition(experiment)
        if tripped:
            await self._finish(run, "stopped", f"Experiment stopped by stop condition {tripped}")
            return
        for action in run.actions.values():
            if action.state == "running" and action.ends_at is not None and action.ends_at <= now:
                await self._end_action(action, "completed", "Action completed")
        for action in run.actions.values():
            if action.state == "pending" and all(run.actions[d].state == "completed" for d in action.start_after
                                                  if d in run.actions):
                await self._start_action(run, action, now)
        if all(a.state == "completed" for a in run.actions.values()):
            await self._finish(run, "completed", "Experiment completed")

    async def _finish(self, run: Run, status: str, reason: str) -> None:
        for action in run.actions.values():
            if action.state == "running":
                await self._end_action(action, "stopped" if status != "completed" else "completed",
                                       "Action stopped" if status != "completed" else "Action completed")
            elif action.state == "pending":
                action.state, action.reason = "cancelled", "Action was cancelled"
        run.reason = reason
        run.experiment.status = status

    # -- actions -------------------------------------------------------------------------------------------
    def _ids(self, run: Run, action: ActionRun) -> list[str]:
        key = TARGET_KEY.get(action.action_id)
        target = action.targets.get(key) if key else None
        if key and target is None:
            raise ExperimentFailed(f"Action {action.name} has no {key} target")
        return list(run.resolved.get(target, [])) if target else []

    async def _start_action(self, run: Run, action: ActionRun, now: float) -> None:
        action.state, action.reason, action.started_at = "running", "Action is running", now
        ids = self._ids(run, action)
        if action.action_id == SPOT:
            before = parse_duration(action.parameters.get("durationBeforeInterruption", "PT2M"))
            terminate_at = now + self.clock.wall(before)
            notice_at = now + self.clock.wall(before - SPOT_NOTICE_S)
            for instance_id in ids:
                self._recommend_rebalance(instance_id, now)
                self.spot_notices[instance_id] = (notice_at, terminate_at)
            self._send_due_notices(now)
            action.ends_at = terminate_at
        elif action.action_id == DISRUPT:
            action.ends_at = now + self.clock.wall(parse_duration(action.parameters["duration"]))
            self._disrupt(set(ids))
            action.on_end = lambda subnets=set(ids): self._restore(subnets)
        elif action.action_id == REBOOT:
            await asyncio.to_thread(self.ec2.reboot_instances, InstanceIds=ids)
            action.ends_at = now
        elif action.action_id == TERMINATE:
            await asyncio.to_thread(self._terminate, ids)
            action.ends_at = now
        elif action.action_id == STOP:
            await asyncio.to_thread(self.ec2.stop_instances, InstanceIds=ids)
            after = action.parameters.get("startInstancesAfterDuration")
            action.ends_at = now + self.clock.wall(parse_duration(after)) if after else now
            if after:
                action.on_end = lambda ids=ids: asyncio.to_thread(self._start_stopped, ids)
        elif action.action_id == WAIT:
            action.ends_at = now + self.clock.wall(parse_duration(action.parameters["duration"]))
        elif action.action_id in (PAUSE_IO, IO_LATENCY):
            added = math.inf if action.action_id == PAUSE_IO else _read_latency_s(action.parameters)
            action.ends_at = now + self.clock.wall(parse_duration(action.parameters["duration"]))
            nodes = await asyncio.to_thread(self._volume_nodes, ids)
            self._impair(nodes, id(action), added)
            action.on_end = lambda nodes=nodes, key=id(action): self._impair(nodes, key, None)

    def _start_stopped(self, ids: list[str]) -> None:
        live = [i for i in ids if i in self.watcher.instances and not self.watcher.instances[i].gone]
        if live:
            self.ec2.start_instances(InstanceIds=live)

    async def _end_action(self, action: ActionRun, state: str, reason: str) -> None:
        undo, action.on_end = action.on_end, None
        if undo is not None:
            result = undo()
            if asyncio.iscoroutine(result):
                await result
        action.state, action.reason, action.ended_at = state, reason, self.clock.now()

    def _recommend_rebalance(self, instance_id: str, now: float) -> None:
        """The EC2 rebalance recommendation FIS sends the moment the spot action starts (IMDS
        events/recommendations/rebalance); Capacity Rebalancing launches the replacement from here."""
        instance = self.watcher.instances.get(instance_id)
        if instance is not None and instance.rebalance_at is None:
            instance.rebalance_at = now
        node = self.world.node_by_instance(instance_id)
        if node is not None and node.rebalance_at is None:
            node.rebalance_at = now
        self.groups.rebalance(instance_id)
        self.hooks.rebalance(instance_id)

    def _send_due_notices(self, now: float) -> None:
        """The two-minute interruption notice (IMDS spot/instance-action), sent SPOT_NOTICE_S before the
        interruption; from then on the instance is reclaimed at its time whatever happens to the experiment.
        A notice still pending when the experiment is stopped is sent all the same (FIDELITY SPOT-4: assumed,
        the stricter reading: no source says stopping the experiment recalls a scheduled interruption)."""
        for instance_id, (notice_at, terminate_at) in list(self.spot_notices.items()):
            if notice_at <= now:
                del self.spot_notices[instance_id]
                self._notify_spot(instance_id, notice_at, terminate_at)

    def _notify_spot(self, instance_id: str, notice_at: float, terminate_at: float) -> None:
        instance = self.watcher.instances.get(instance_id)
        if instance is not None:
            instance.spot_notice_at, instance.spot_terminate_at = notice_at, terminate_at
        node = self.world.node_by_instance(instance_id)
        if node is not None:
            node.spot_notice_at, node.spot_terminate_at = notice_at, terminate_at
        self.hooks.spot_notice(instance_id, terminate_at)
        self.spot_terminations[instance_id] = terminate_at

    def _volume_nodes(self, volume_ids: list[str]) -> list[str]:
        """The nodes whose instances the volumes are attached to (a detached volume slows nobody)."""
        if not volume_ids:
            return []
        volumes = self.ec2.describe_volumes(VolumeIds=volume_ids)["Volumes"]
        zones = sorted({v.get("AvailabilityZone", "") for v in volumes})
        if len(zones) > 1:     # FIDELITY FIS-6: an EBS action's target volumes must be in one Availability Zone
            raise ExperimentFailed(f"The target volumes must be in the same Availability Zone, not {', '.join(zones)}")
        nodes = []
        for volume in volumes:
            for attachment in volume.get("Attachments") or []:
                node = self.world.node_by_instance(attachment.get("InstanceId", ""))
                if node is not None and node.name not in nodes:
                    nodes.append(node.name)
        return nodes

    def _impair(self, nodes: list[str], key: int, added_s: float | None) -> None:
        """Every read on the nodes' volumes waits `added_s` longer (None: this action's impairment ends)."""
        for node in nodes:
            active = self._volume_io.setdefault(node, {})
            if added_s is None:
                active.pop(key, None)
            else:
                active[key] = added_s
            if active:
                self.world.io_latency_s[node] = max(active.values())
            else:
                self._volume_io.pop(node, None)
                self.world.io_latency_s.pop(node, None)

    def _disrupt(self, subnets: set[str]) -> None:
        fresh = {s for s in subnets if self._disruptions.get(s, 0) == 0}
        for subnet in subnets:
            self._disruptions[subnet] = self._disruptions.get(subnet, 0) + 1
        self.world.disrupted_subnets |= subnets
        if fresh:
            self.hooks.connectivity(fresh, True)

    def _restore(self, subnets: set[str]) -> None:
        restored = set()
        for subnet in subnets:
            self._disruptions[subnet] = max(0, self._disruptions.get(subnet, 0) - 1)
            if self._disruptions[subnet] == 0:
                restored.add(subnet)
        self.world.disrupted_subnets -= restored
        if restored:
            self.hooks.connectivity(restored, False)

    # -- stop conditions -----------------------------------------------------------------------------------
    def _tripped_stop_condition(self, experiment: Any) -> str | None:
        cw = backends.backend("cloudwatch", self.region)
        for condition in experiment.stop_conditions or []:
            if condition.get("source") != "aws:cloudwatch:alarm":
                continue
            value = condition.get("value", "")
            for alarm in backends.snapshot(lambda: cw.alarms.values()):
                if value in (alarm.alarm_arn, alarm.name) and alarm.state_value == "ALARM":
                    return alarm.name
        return None

    # -- targets -------------------------------------------------------------------------------------------
    def _resolve_all(self, experiment: Any) -> dict[str, list[str]]:
        mode = (experiment.experiment_options or {}).get("emptyTargetResolutionMode", "fail")
        resolved = {}
        for name, target in (experiment.targets or {}).items():
            ids = self._resolve(target)
            if not ids and mode == "fail":
                raise ExperimentFailed(f"Target resolution returned empty set for target {name}")
            resolved[name] = ids
        return resolved

    def _resolve(self, target: dict[str, Any]) -> list[str]:
        kind = target.get("resourceType", "")
        if kind in ("aws:ec2:instance", "aws:ec2:spot-instance"):
            records = [i for r in self.ec2.describe_instances()["Reservations"] for i in r["Instances"]
                       if i["State"]["Name"] not in ("terminated", "shutting-down")]
            if kind == "aws:ec2:spot-instance":
                records = [i for i in records if i.get("InstanceLifecycle") == "spot"]
            key, arn = "InstanceId", lambda rid: backends.instance_arn(self.region, rid)
        elif kind == "aws:ec2:subnet":
            records = self.ec2.describe_subnets()["Subnets"]
            key, arn = "SubnetId", lambda rid: backends.subnet_arn(self.region, rid)
        elif kind == "aws:ec2:ebs-volume":
            records = [v for v in self.ec2.describe_volumes()["Volumes"] if v.get("State") != "deleted"]
            key, arn = "VolumeId", lambda rid: volume_arn(self.region, rid)
        else:
            raise ExperimentFailed(f"Target resource type {kind!r} not supported by the twin")
        wanted_arns = set(target.get("resourceArns") or [])
        wanted_tags = dict(target.get("resourceTags") or {})
        matches = []
        for record in records:
            rid = record[key]
            if wanted_arns and arn(rid) not in wanted_arns and rid not in wanted_arns:
                continue
            tags = {t["Key"]: t["Value"] for t in record.get("Tags", [])}
            if any(tags.get(k) != v for k, v in wanted_tags.items()):
                continue
            if not all(set(map(str, walk(record, f["path"].split(".")))) & set(map(str, f.get("values", [])))
                       for f in target.get("filters") or []):
                continue
            matches.append(rid)
        return select(sorted(matches), target.get("selectionMode", "ALL"), self.world.rng)

    # -- what moto shows -----------------------------------------------------------------------------------
    def _attach(self, run: Run) -> None:
        """Make moto's get/list of this experiment show the twin's action states, reason and resolved targets."""
        from moto.fis.models import ResolvedTarget
        from moto.core.utils import unix_time

        experiment = run.experiment
        reasons = dict(type(experiment).STATUS_REASONS)

        class Reasons(dict):  # type: ignore[type-arg]
            def get(self, key: str, default: Any = None) -> Any:
                if run.reason and key == experiment.status and key in TERMINAL:
                    return run.reason
                return reasons.get(key, default)

        experiment.STATUS_REASONS = Reasons()

        def sync_state() -> str:
            status = experiment.status or "pending"
            if status in TERMINAL and experiment.end_time is None:
                experiment.end_time = unix_time()
            for name, action in (experiment.actions or {}).items():
                mine = run.actions.get(name)
                if mine is None:
                    continue
                action["state"] = {"status": mine.state, "reason": mine.reason}
                if mine.started_at is not None:
                    action["startTime"] = mine.started_at
                if mine.ended_at is not None:
                    action["endTime"] = mine.ended_at
            return status

        experiment._sync_state = sync_state
        experiment.resolved_targets = lambda: [
            ResolvedTarget(resource_type=(experiment.targets or {}).get(name, {}).get("resourceType", ""),
                           target_name=name,
                           resource_arn=(backends.subnet_arn(self.region, rid) if rid.startswith("subnet-")
                                         else volume_arn(self.region, rid) if rid.startswith("vol-")
                                         else backends.instance_arn(self.region, rid)))
            for name, ids in run.resolved.items() for rid in ids]

    async def stop_all(self) -> None:
        for run in self.runs.values():
            if run.experiment.status not in TERMINAL:
                await self._finish(run, "stopped", "Experiment stopped: the twin is shutting down")
