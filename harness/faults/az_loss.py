"""az-loss: one Availability Zone drops off the network (or loses power), injected the way AWS FIS does it.

`mode: network` runs `aws:network:disrupt-connectivity` with `scope: all` on exactly the zone's subnets (found
with ec2 describe_subnets filtered by availability-zone, and passed as explicit ARNs, so the experiment can never
reach another zone or region). `mode: power` is the "AZ Availability: Power Interruption" shape: the zone's
subnets cut plus `aws:ec2:stop-instances` of the zone's instances with `startInstancesAfterDuration`.
`zonal_shift: true` also starts an ARC zonal shift of the load balancer away from the zone, which is what an
operator (or zonal autoshift) does; it is cancelled on revert. ARC takes the zone's AZ *ID* (use2-az1, from
ec2 describe_availability_zones: zone names map to different IDs in every account) and shifts only a load
balancer whose `zonal_shift.config.enabled` attribute is true (off by default), so the plan reads both and
refuses to start when either is missing: a shift that cannot start is a failed preflight, not a half-run loss.

Landed: the zone's nodes go NotReady/Unknown in the Kubernetes API, or the load balancer reports the zone's
targets unhealthy (elbv2 describe_target_health): the two signals a real AZ loss gives.
Revert: stop the experiment (FIS restores connectivity and starts stopped instances) and cancel the shift.
"""
from __future__ import annotations

import math
import time
from typing import Any

from kubernetes import client

from harness.faults.base import Fault, FaultError, NodeRef, register
from harness.faults.node_reboot import (await_experiment_started, create_template, fis_stop_conditions, instance_arn,
                                        start_experiment, stop_fis_owed, stops_on, template_token)
from harness.faults.selection import ZONE, NODEGROUP, instance_id_of

ARC = "arc-zonal-shift"
ZONAL_SHIFT_ATTRIBUTE = "zonal_shift.config.enabled"     # elbv2 load balancer attribute, false by default
FIS_MARGIN_S = 120.0      # deployment seconds the experiment outlasts the scenario step


def zonal_shift_enabled(attributes: list[dict[str, str]]) -> bool:
    """Is `zonal_shift.config.enabled` true in an elbv2 describe_load_balancer_attributes answer?"""
    return any(a.get("Key") == ZONAL_SHIFT_ATTRIBUTE and str(a.get("Value", "")).lower() == "true"
               for a in attributes)


def _iso_duration(seconds: float) -> str:
    return f"PT{max(1, math.ceil(seconds / 60))}M"


def _expires_in(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds / 60))}m"


@register
class AzLoss(Fault):
    name = "az-loss"

    # ------------------------------------------------------------------------------------------ plan
    def plan(self) -> str:
        target, zone = self.ctx.target, self.params.zone
        if not zone.startswith(target.region):
            raise FaultError(f"zone {zone!r} is not in the target's region {target.region}")
        ec2 = target.aws("ec2")
        subnets = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [zone]}])["Subnets"]
        if not subnets:
            raise FaultError(f"no subnet in {zone}: nothing to disconnect (check the zone name)")
        self.extra["zone"] = zone
        self.extra["subnets"] = sorted(s["SubnetId"] for s in subnets)
        self.extra["subnet_arns"] = [s.get("SubnetArn") or
                                     f"arn:aws:ec2:{target.region}:{s['OwnerId']}:subnet/{s['SubnetId']}"
                                     for s in sorted(subnets, key=lambda s: s["SubnetId"])]
        self.nodes = self._zone_nodes(zone)
        if not self.nodes:
            raise FaultError(f"no Kubernetes node in {zone} in contexts {', '.join(target.contexts)}")
        # FIS's own duration is the dead man's switch: longer than the step, so the harness's revert (which
        # stop_experiment does) is what ends the loss, and a crashed harness still gets the zone back.
        step_duration = getattr(getattr(self, "step", None), "duration", None)
        self.extra["duration_s"] = float(step_duration) + FIS_MARGIN_S if step_duration else 3600.0
        plan = (f"FIS aws:network:disrupt-connectivity (scope all) on {len(subnets)} subnet(s) of {zone} "
                f"({', '.join(self.extra['subnets'])}), {len(self.nodes)} node(s)")
        if self.params.mode == "power":
            ids = [n.instance_id for n in self.nodes if n.instance_id]
            self.extra["instance_arns"] = [instance_arn(target, i) for i in ids]
            plan += f"; aws:ec2:stop-instances on {len(ids)} instance(s), started again on revert"
        if self.params.zonal_shift:
            self.extra["load_balancer_arn"] = self._load_balancer_arn()
            self.extra["away_from"] = self._zone_id(zone)
            self._require_zonal_shift_enabled(self.extra["load_balancer_arn"])
            plan += f"; ARC zonal shift of {self.extra['load_balancer_arn']} away from {self.extra['away_from']}"
        self.extra["target_groups"] = self._target_groups()
        self.stop_conditions = fis_stop_conditions(self.ctx)
        return plan + stops_on(self.stop_conditions)

    def _zone_nodes(self, zone: str) -> list[NodeRef]:
        found = []
        for context in self.ctx.target.contexts:
            for node in client.CoreV1Api(self.ctx.target.kube(context)).list_node().items:
                labels = node.metadata.labels or {}
                if labels.get(ZONE) == zone:
                    found.append(NodeRef(context=context, name=node.metadata.name, zone=zone,
                                         nodegroup=labels.get(NODEGROUP), instance_id=instance_id_of(node)))
        return sorted(found, key=lambda n: (n.context, n.name))

    def _load_balancer_arn(self) -> str:
        name = self.ctx.target.spec.load_balancer.name
        try:
            found = self.ctx.target.aws("elbv2").describe_load_balancers(Names=[name])["LoadBalancers"]
        except Exception as exc:
            raise FaultError(f"load balancer {name!r} not found ({exc}); set load_balancer.name in the target") from exc
        return found[0]["LoadBalancerArn"]

    def _zone_id(self, zone: str) -> str:
        """The AZ ID ARC's awayFrom takes (use2-az1). Zone names map to IDs per account, and ARC refuses a
        name, so there is no falling back to the name: no ID, no shift."""
        try:
            zones = self.ctx.target.aws("ec2").describe_availability_zones(ZoneNames=[zone])["AvailabilityZones"]
        except Exception as exc:
            raise FaultError(f"could not map {zone} to its AZ ID for the zonal shift "
                             f"(ec2 describe_availability_zones: {exc})") from exc
        zone_id = next((z.get("ZoneId") for z in zones if z.get("ZoneName") == zone and z.get("ZoneId")), None)
        if not zone_id:
            raise FaultError(f"EC2 reports no AZ ID for {zone}: ARC zonal shift takes AZ IDs (such as use2-az1), "
                             "not zone names")
        return zone_id

    def _require_zonal_shift_enabled(self, load_balancer_arn: str) -> None:
        """Preflight: ARC shifts a load balancer only when its `zonal_shift.config.enabled` attribute is true."""
        elbv2 = self.ctx.target.aws("elbv2")
        try:
            attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=load_balancer_arn)["Attributes"]
        except Exception as exc:
            raise FaultError(f"could not read the attributes of {load_balancer_arn} "
                             f"(elbv2 describe_load_balancer_attributes: {exc})") from exc
        if not zonal_shift_enabled(attributes):
            raise FaultError(f"zonal shift is not enabled on {load_balancer_arn}: ARC would refuse the shift. "
                             f"Enable it (elbv2 modify_load_balancer_attributes {ZONAL_SHIFT_ATTRIBUTE}=true) "
                             "or drop zonal_shift from the scenario")

    def _target_groups(self) -> list[str]:
        """Target group ARNs of the load balancer, to read the zone's target health (empty when there is none)."""
        try:
            elbv2 = self.ctx.target.aws("elbv2")
            lb = self.extra.get("load_balancer_arn") or self._load_balancer_arn()
            return [tg["TargetGroupArn"] for tg in elbv2.describe_target_groups(LoadBalancerArn=lb)["TargetGroups"]]
        except Exception:
            return []

    # ---------------------------------------------------------------------------------------- inject
    def inject(self) -> None:
        target = self.ctx.target
        duration = _iso_duration(self.extra["duration_s"])
        targets: dict[str, Any] = {"subnets": {"resourceType": "aws:ec2:subnet",
                                               "resourceArns": self.extra["subnet_arns"],
                                               "selectionMode": f"COUNT({len(self.extra['subnet_arns'])})"}}
        actions: dict[str, Any] = {"disrupt": {"actionId": "aws:network:disrupt-connectivity",
                                               "parameters": {"duration": duration, "scope": "all"},
                                               "targets": {"Subnets": "subnets"}}}
        if self.params.mode == "power" and self.extra.get("instance_arns"):
            targets["instances"] = {"resourceType": "aws:ec2:instance", "resourceArns": self.extra["instance_arns"],
                                    "selectionMode": f"COUNT({len(self.extra['instance_arns'])})"}
            actions["power"] = {"actionId": "aws:ec2:stop-instances", "targets": {"Instances": "instances"},
                                "parameters": {"startInstancesAfterDuration": duration}}
        token = template_token()
        args: dict[str, Any] = {"template_token": token}
        if self.params.zonal_shift:
            args.update(load_balancer_arn=self.extra["load_balancer_arn"], away_from=self.extra["away_from"])
        self.owe_revert(args)
        template_id = create_template(target, token, f"g7chaos az-loss of {self.params.zone} ({self.params.mode})",
                                      targets, actions, self.stop_conditions)
        self.extra["template_id"] = template_id
        self.started_at = time.time()
        self.extra["lost_at"] = self.started_at      # the zone may go dark from here on: the failover clock starts
        self.extra["experiment_id"] = start_experiment(target, template_id)
        await_experiment_started(target, self.extra["experiment_id"], time.time() + 10)
        if self.params.zonal_shift:
            try:
                shift = target.aws(ARC).start_zonal_shift(
                    resourceIdentifier=self.extra["load_balancer_arn"], awayFrom=self.extra["away_from"],
                    expiresIn=_expires_in(self.extra["duration_s"]), comment=f"g7chaos az-loss {self.params.zone}")
            except Exception as exc:
                raise FaultError(f"ARC start_zonal_shift away from {self.extra['away_from']} failed: {exc}") from exc
            self.extra["zonal_shift_id"] = shift["zonalShiftId"]
            self.extra["zonal_shift_at"] = time.time()

    # ---------------------------------------------------------------------------------------- landed
    def check_landed(self) -> dict[str, Any] | None:
        not_ready = {}
        for node in self.nodes:
            try:
                current = client.CoreV1Api(self.ctx.target.kube(node.context)).read_node(node.name)
            except client.ApiException as exc:
                if exc.status == 404:
                    not_ready[node.name] = "gone"
                continue
            ready = next((c for c in current.status.conditions or [] if c.type == "Ready"), None)
            if ready is not None and ready.status != "True":
                not_ready[node.name] = ready.status
        if self.nodes and len(not_ready) == len(self.nodes):
            return {"source": "node-condition", "zone": self.params.zone, "nodes": not_ready}
        unhealthy = self._unhealthy_targets()
        if unhealthy is not None and unhealthy["targets"] and unhealthy["unhealthy"] == unhealthy["targets"]:
            return {"source": "target-health", "zone": self.params.zone, **unhealthy}
        return None

    def _unhealthy_targets(self) -> dict[str, Any] | None:
        zone_instances = {n.instance_id for n in self.nodes if n.instance_id}
        if not zone_instances or not self.extra.get("target_groups"):
            return None
        elbv2 = self.ctx.target.aws("elbv2")
        total = unhealthy = 0
        for tg in self.extra["target_groups"]:
            for desc in elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]:
                if desc["Target"]["Id"] in zone_instances:
                    total += 1
                    unhealthy += desc["TargetHealth"]["State"] != "healthy"
        return {"targets": total, "unhealthy": unhealthy}

    # ---------------------------------------------------------------------------------------- revert
    def before_revert(self) -> None:
        self.extra.setdefault("revert_started_at", time.time())   # the zone may come back from here on

    @classmethod
    def revert_owed(cls, target: Any, args: dict[str, Any]) -> None:
        """Stop the experiment (FIS restores the network and starts what it stopped), cancel our zonal shift."""
        errors = []
        try:
            stop_fis_owed(target, args)
        except Exception as exc:
            errors.append(f"FIS: {exc}")
        if args.get("load_balancer_arn"):
            try:
                arc = target.aws(ARC)
                shifts = arc.list_zonal_shifts(status="ACTIVE").get("items", [])
                for shift in shifts:
                    if shift.get("resourceIdentifier") == args["load_balancer_arn"] and \
                            str(shift.get("comment", "")).startswith("g7chaos az-loss"):
                        arc.cancel_zonal_shift(zonalShiftId=shift["zonalShiftId"])
            except Exception as exc:
                errors.append(f"ARC: {exc}")
        if errors:
            raise FaultError("; ".join(errors))
