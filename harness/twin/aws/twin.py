"""`AwsTwin`: moto in-process as the record store, plus the behaviour it lacks.

Usage (the twin's assembly does this; tests do the same):

    aws = AwsTwin(world, hooks)
    url = aws.start()          # moto on 127.0.0.1:<free port>
    aws.seed()                 # VPC, subnets, placement group, EKS, ASGs, instances (hooks.launched), NLB, alarms
    task = loop.create_task(aws.run())          # the behaviour loop, on the twin's asyncio loop
    imds_app, zonal_app = aws.imds_app(), aws.zonal_shift_app()   # serve each with uvicorn
    ...; await aws.aclose(); aws.stop()

After seed(): `aws.seeded` holds the VPC, the FIS role ARN, the NLB ARN, the target group per AZ, the ASG per
nodegroup and the alarm names; `aws.client(service)` is a boto3 client on moto; `aws.set_cluster_endpoint`
points EKS describe_cluster at the twin's Kubernetes API. Timings are real-world and scaled by the world's
clock; the ASG's launch delay is `aws.groups.launch_delay_s` (real-world seconds).

moto's backends are process-wide: one AwsTwin per process at a time (start() and stop() reset them).
seed() and run() call the hooks on the calling thread: call seed() on the loop thread or before the loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.twin.aws import backends, botodata, node_repair, placement
from harness.twin.aws.alarms import CloudWatchTwin, alarm_specs, install_alarm_history
from harness.twin.aws.asg import ASG_LAUNCH_DELAY_S, AMI_ID, GroupSpec, ScalingGroups, install_activities
from harness.twin.aws.elb import TargetHealth
from harness.twin.aws.fis import FisEngine
from harness.twin.aws.hooks import AwsHooks, GuardedHooks
from harness.twin.aws.imds import Imds
from harness.twin.aws.instances import InstanceWatcher, ManagedInstance
from harness.twin.aws.zonal_shift import ZONAL_SHIFT_ATTRIBUTE, ZonalShifts
from harness.twin.world import World

log = logging.getLogger(__name__)

TICK_S = 0.05
VPC_CIDR = "10.0.0.0/16"
NLB_NAME = "g7-inference"
SERVING_PORT = 8000
FIS_ROLE = "g7chaos-fis"
FIS_SERVICE = "fis.amazonaws.com"
FIS_SERVICE_LINKED_ROLE = "AWSServiceRoleForFIS"     # FIDELITY FIS-4: path /aws-service-role/fis.amazonaws.com/
KUBERNETES_VERSION = "1.31"


def trust_policy(service: str) -> str:
    """A role trust policy letting one AWS service principal assume the role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": service}}]})


def az_short(az: str) -> str:
    """us-east-2a -> use2a, the suffix of the contract's cluster and target group names."""
    parts = az.split("-")
    return f"{parts[0]}{parts[1][0]}{parts[2]}"


@dataclass
class Seeded:
    """What seed() created, for the assembly's endpoints file and for tests."""

    vpc_id: str = ""
    fis_role_arn: str = ""
    nlb_arn: str = ""
    target_groups: dict[str, str] = field(default_factory=dict)      # az -> target group arn
    asg_names: dict[str, str] = field(default_factory=dict)          # nodegroup -> ASG name
    alarm_names: list[str] = field(default_factory=list)
    placement_groups: list[str] = field(default_factory=list)


class AwsTwin:
    def __init__(self, world: World, hooks: AwsHooks) -> None:
        self.world = world
        self.hooks: AwsHooks = GuardedHooks(hooks)   # type: ignore[assignment]
        self.region = world.region
        self.url = ""
        self.seeded = Seeded()
        self._server: Any = None
        self._clients: dict[str, Any] = {}
        self._stopping = False
        self.watcher = InstanceWatcher(self.region, self.hooks)
        self.elb = TargetHealth(world, self.region, world.clock)
        self.cloudwatch = CloudWatchTwin(world, self.region, world.clock)
        self.zonal = ZonalShifts(world, world.clock, region=self.region)
        self.imds = Imds(world, self.watcher)
        self.groups: ScalingGroups | None = None
        self.fis: FisEngine | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> str:
        botodata.share_parsed_data_files()         # before moto's imports make their Sessions
        from moto.moto_api._internal.models import moto_api_backend
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto's catalogue of public AMIs costs ~0.6 s per backend reset; the twin launches its own AMI only
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        moto_api_backend.reset()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        import boto3

        session = boto3.session.Session()
        for service in ("ec2", "autoscaling", "eks", "elbv2", "cloudwatch", "iam"):
            self._clients[service] = backends.boto3_client(service, self.url, self.region, session)
        FisEngine.install()
        install_alarm_history()
        placement.install()
        node_repair.install()
        install_activities()
        self.watcher.install()
        self.groups = ScalingGroups(self.region, self.world.clock, self.watcher, self._clients["ec2"])
        self.fis = FisEngine(self.world, self.region, self.world.clock, self.hooks, self.watcher, self.groups,
                             self._clients["ec2"])
        self.groups.on_launched.append(self._launched)
        self.watcher.on_terminated.append(self._terminated)
        return self.url

    def client(self, service: str) -> Any:
        """A boto3 client on the twin's moto (for the assembly's own controllers and for tests)."""
        if service not in self._clients:
            self._clients[service] = backends.boto3_client(service, self.url, self.region)
        return self._clients[service]

    def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.stop()
            self._server = None
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()

    async def aclose(self) -> None:
        """Stop the behaviour loop's in-flight work (probes, launches) before the loop closes."""
        self._stopping = True
        if self.groups is not None:
            await self.groups.drain()
        await self.elb.drain()

    def set_cluster_endpoint(self, cluster: str, url: str) -> None:
        """Point EKS describe_cluster's endpoint at the twin's Kubernetes API for that cluster (moto's is fake)."""
        backends.backend("eks", self.region).clusters[cluster].endpoint = url

    def imds_app(self) -> Any:
        return self.imds.app()

    def zonal_shift_app(self) -> Any:
        return self.zonal.app()

    # -- seed ----------------------------------------------------------------------------------------------
    def seed(self) -> Seeded:
        assert self.groups is not None, "start() first"
        ec2, iam, eks = self._clients["ec2"], self._clients["iam"], self._clients["eks"]
        world = self.world
        self._remove_default_vpc(ec2)
        vpc = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=[{"ResourceType": "vpc", "Tags": [
            {"Key": "Name", "Value": "g7-inference"}]}])["Vpc"]["VpcId"]
        self.seeded.vpc_id = vpc
        octet = 0
        for az in world.azs:
            world.subnets[az] = []
            for n in range(2):
                octet += 1
                subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{octet * 16}.0/20", AvailabilityZone=az,
                                           TagSpecifications=[{"ResourceType": "subnet", "Tags": [
                                               {"Key": "Name", "Value": f"g7-private-{az_short(az)}-{n + 1}"},
                                               {"Key": "kubernetes.io/role/internal-elb", "Value": "1"}]}])
                world.subnets[az].append(subnet["Subnet"]["SubnetId"])
        self.seeded.fis_role_arn = iam.create_role(RoleName=FIS_ROLE,
                                                   AssumeRolePolicyDocument=trust_policy(FIS_SERVICE))["Role"]["Arn"]
        # FIDELITY FIS-4: an account that has used FIS holds FIS's service-linked role, which trusts FIS too
        iam.create_role(RoleName=FIS_SERVICE_LINKED_ROLE, Path=f"/aws-service-role/{FIS_SERVICE}/",
                        AssumeRolePolicyDocument=trust_policy(FIS_SERVICE),
                        Description="Service-linked role of AWS Fault Injection Service")
        cluster_role = iam.create_role(RoleName="g7-eks-cluster",
                                       AssumeRolePolicyDocument=trust_policy("eks.amazonaws.com"))["Role"]["Arn"]
        node_role = iam.create_role(RoleName="g7-eks-node",
                                    AssumeRolePolicyDocument=trust_policy("ec2.amazonaws.com"))["Role"]["Arn"]

        clusters: dict[str, list[str]] = {name: list(c.azs) for name, c in world.clusters.items()}
        for group in world.nodegroups.values():
            azs = clusters.setdefault(group.cluster, [])
            azs.extend(a for a in group.azs if a not in azs)
        for name, azs in clusters.items():
            eks.create_cluster(name=name, version=KUBERNETES_VERSION, roleArn=cluster_role,
                               resourcesVpcConfig={"subnetIds": [s for a in azs for s in world.subnets[a]]})

        for group in world.nodegroups.values():
            pg = group.placement_group if world.behaviour.placement_group else None
            if pg and pg not in self.seeded.placement_groups:
                ec2.create_placement_group(GroupName=pg, Strategy="cluster")
                self.seeded.placement_groups.append(pg)
            self._seed_group(group, pg, node_role)

        self._seed_nlb(vpc)
        cloudwatch = self._clients["cloudwatch"]
        for name in clusters:
            for spec in alarm_specs(name, world.behaviour):
                cloudwatch.put_metric_alarm(**spec)
                self.seeded.alarm_names.append(spec["AlarmName"])

        launches: list[ManagedInstance] = []
        for group in world.nodegroups.values():
            spec = self.groups.groups[group.name]
            planned: list[tuple[str, str]] = []
            for _ in range(group.desired):
                az, subnet = self.groups.placement(spec, planned)
                planned.append((az, subnet))
                launches.append(self.groups.launch_now(spec, az, subnet))
                self.watcher.track(launches[-1])
            moto_group = self.groups.moto_group(spec)
            moto_group.desired_capacity = group.desired
            moto_group.min_size = group.desired
        for instance in launches:
            self._launched(instance, in_service=True)
        return self.seeded

    @staticmethod
    def _remove_default_vpc(ec2: Any) -> None:
        """moto starts every region with a default VPC; the twin's account holds only the deployment's, so
        "the subnets of us-east-2a" means the deployment's subnets, as in a dedicated production account."""
        for vpc in ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]:
            vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
            for subnet in ec2.describe_subnets(Filters=vpc_filter)["Subnets"]:
                ec2.delete_subnet(SubnetId=subnet["SubnetId"])
            for gateway in ec2.describe_internet_gateways(
                    Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]:
                ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc["VpcId"])
                ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
            ec2.delete_vpc(VpcId=vpc["VpcId"])

    def _seed_group(self, group: Any, placement_group: str | None, node_role: str) -> None:
        ec2, eks, autoscaling = self._clients["ec2"], self._clients["eks"], self._clients["autoscaling"]
        subnets = {az: list(self.world.subnets[az]) for az in group.azs}
        template = ec2.create_launch_template(LaunchTemplateName=f"{group.name}-lt", LaunchTemplateData={
            "ImageId": AMI_ID, "InstanceType": group.instance_type})["LaunchTemplate"]["LaunchTemplateId"]
        nodegroup = eks.create_nodegroup(
            clusterName=group.cluster, nodegroupName=group.name, nodeRole=node_role,
            subnets=[s for az in group.azs for s in subnets[az]], instanceTypes=[group.instance_type],
            capacityType=group.capacity_type, amiType="AL2023_x86_64_NVIDIA",
            scalingConfig={"minSize": group.desired, "maxSize": group.desired * 2, "desiredSize": group.desired},
            labels={"role": group.role},
            **({"nodeRepairConfig": group.repair_config} if group.repair_config is not None else {}))["nodegroup"]
        asg_name = f"eks-{group.name}-{nodegroup['nodegroupArn'].rsplit('/', 1)[-1]}"
        record = backends.backend("eks", self.region).clusters[group.cluster].nodegroups[group.name]
        record.resources["autoScalingGroups"] = [{"name": asg_name}]
        tags = {"eks:cluster-name": group.cluster, "eks:nodegroup-name": group.name,
                f"kubernetes.io/cluster/{group.cluster}": "owned"}
        request: dict[str, Any] = dict(
            AutoScalingGroupName=asg_name, LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
            MinSize=0, MaxSize=group.desired * 2, DesiredCapacity=0,
            VPCZoneIdentifier=",".join(s for az in group.azs for s in subnets[az]),
            CapacityRebalance=group.capacity_type == "SPOT",
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in tags.items()])
        if placement_group:
            request["PlacementGroup"] = placement_group
        autoscaling.create_auto_scaling_group(**request)
        assert self.groups is not None
        self.groups.manage(GroupSpec(
            nodegroup=group.name, cluster=group.cluster, asg_name=asg_name, azs=list(group.azs), subnets=subnets,
            instance_type=group.instance_type, capacity_type=group.capacity_type, placement_group=placement_group,
            launch_template_id=template, tags=tags))
        self.seeded.asg_names[group.name] = asg_name

    def _seed_nlb(self, vpc: str) -> None:
        elbv2 = self._clients["elbv2"]
        nlb = elbv2.create_load_balancer(Name=NLB_NAME, Type="network", Scheme="internal",
                                         Subnets=[self.world.subnets[az][0] for az in self.world.azs])
        self.seeded.nlb_arn = nlb["LoadBalancers"][0]["LoadBalancerArn"]
        for az in self.world.azs:
            tg = elbv2.create_target_group(
                Name=f"g7-13b-{az_short(az)}", Protocol="TCP", Port=SERVING_PORT, VpcId=vpc, TargetType="instance",
                HealthCheckProtocol="HTTP", HealthCheckPort="traffic-port", HealthCheckPath="/v2/health/ready",
                HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=6,
                HealthyThresholdCount=3, UnhealthyThresholdCount=3)["TargetGroups"][0]["TargetGroupArn"]
            self.seeded.target_groups[az] = tg
            self.elb.manage(az, tg)
        forward = [{"TargetGroupArn": arn, "Weight": 1} for arn in self.seeded.target_groups.values()]
        try:
            elbv2.create_listener(LoadBalancerArn=self.seeded.nlb_arn, Protocol="TCP", Port=SERVING_PORT,
                                  DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": forward}}])
        except Exception:   # a listener is cosmetic for the twin: routing is the gateway's
            log.debug("NLB listener not created", exc_info=True)
        # the deployment opted its NLB in to ARC zonal shift (disabled by default on every load balancer)
        elbv2.modify_load_balancer_attributes(LoadBalancerArn=self.seeded.nlb_arn, Attributes=[
            {"Key": ZONAL_SHIFT_ATTRIBUTE, "Value": "true"}])
        self.zonal.add_resource(self.seeded.nlb_arn, NLB_NAME, list(self.world.azs))

    # -- callbacks -----------------------------------------------------------------------------------------
    def _serves_13b(self, instance: ManagedInstance) -> bool:
        group = self.world.nodegroups.get(instance.nodegroup)
        return group is not None and group.role == "13b"

    def _launched(self, instance: ManagedInstance, in_service: bool = False) -> None:
        if self._serves_13b(instance):
            self.elb.register(instance.az, instance.instance_id, in_service=in_service)
        self.hooks.launched(instance.instance_id, instance.nodegroup, instance.az, instance.subnet_id,
                            instance.private_ip, instance.capacity_type, instance.placement_group)

    def _terminated(self, instance: ManagedInstance) -> None:
        self.elb.deregister_terminated(instance.instance_id)
        if self.groups is not None:
            self.groups.record_termination(instance)
            self.groups.rebalancing.discard(instance.instance_id)
        if self.fis is not None:
            self.fis.spot_terminations.pop(instance.instance_id, None)
            self.fis.spot_notices.pop(instance.instance_id, None)

    # -- the behaviour loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        assert self.groups is not None and self.fis is not None, "start() first"
        self._stopping = False
        async with httpx.AsyncClient() as client:
            try:
                while not self._stopping:
                    now = time.time()
                    for name, step in (("instances", self.watcher.poll), ("fis", lambda: self.fis.tick(now)),
                                       ("asg", lambda: self.groups.tick(now)),
                                       ("alarms", lambda: self.cloudwatch.tick(now)),
                                       ("elb", lambda: self.elb.tick(now, client)),
                                       ("zonal-shift", lambda: self.zonal.tick(now))):
                        try:
                            result = step()
                            if asyncio.iscoroutine(result):
                                await result
                        except Exception:   # one concern failing must not stop the others
                            log.exception("aws twin: %s step failed", name)
                    await asyncio.sleep(TICK_S)
            finally:
                await self.elb.drain()
                if self.groups is not None:
                    await self.groups.drain()


__all__ = ["AwsTwin", "Seeded", "ASG_LAUNCH_DELAY_S", "az_short"]
