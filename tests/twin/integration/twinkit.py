"""The assembled twin for end-to-end tests: real kube API servers, moto, gateway, controllers.

Each module starts one twin (moto's backends are per process, so twins run one at a time) and talks
to it only through the official kubernetes client, boto3, kubectl and HTTP on loopback.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import boto3
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.stream import stream

from harness.twin.server import TwinHandle, TwinServer

TIME_SCALE = 60.0


@contextmanager
def running_twin(tmp: Path, profile: str, nodes_per_az: int = 1, time_scale: float = TIME_SCALE) -> Iterator["Twin"]:
    handle = TwinServer.start_in_thread(profile=profile, nodes_per_az=nodes_per_az, time_scale=time_scale,
                                        out_dir=tmp / "twin")
    try:
        yield Twin(handle)
    finally:
        handle.stop()


class Twin:
    """A running twin with clients built only from its endpoints file."""

    def __init__(self, handle: TwinHandle):
        self.handle = handle
        self.e = handle.endpoints
        self.scale = float(self.e["time_scale"])
        self._kube: dict[str, kclient.ApiClient] = {}

    @property
    def world(self):
        return self.handle.world

    def wall(self, real_world_seconds: float) -> float:
        return real_world_seconds / self.scale

    def aws(self, service: str) -> Any:
        endpoint = self.e["aws_endpoints"].get(service, self.e["aws_endpoint"])
        return boto3.client(service, endpoint_url=endpoint, region_name=self.e["region"],
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def api(self, context: str) -> kclient.ApiClient:
        if context not in self._kube:
            self._kube[context] = kconfig.new_client_from_config(self.e["kubeconfig"], context=context)
        return self._kube[context]

    def core(self, context: str) -> kclient.CoreV1Api:
        return kclient.CoreV1Api(self.api(context))

    def node(self, context: str, name: str):
        try:
            return self.core(context).read_node(name)
        except kclient.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def condition(self, context: str, name: str, type_: str):
        node = self.node(context, name)
        return next((c for c in node.status.conditions if c.type == type_), None) if node else None

    def nodes(self, context: str, nodegroup: str | None = None):
        selector = f"eks.amazonaws.com/nodegroup={nodegroup}" if nodegroup else None
        return self.core(context).list_node(label_selector=selector).items

    def pod_on(self, context: str, namespace: str, selector: str, node: str):
        pods = self.core(context).list_namespaced_pod(namespace, label_selector=selector,
                                                     field_selector=f"spec.nodeName={node}").items
        return pods[0] if pods else None

    def workload_pods_on(self, context: str, node: str):
        return self.core(context).list_namespaced_pod("inference", field_selector=f"spec.nodeName={node}").items

    def alarm_state(self, name: str) -> str | None:
        alarms = self.aws("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return alarms[0]["StateValue"] if alarms else None

    def instance_arn(self, instance_id: str) -> str:
        return f"arn:aws:ec2:{self.e['region']}:123456789012:instance/{instance_id}"

    def fis_role(self) -> str:
        return self.aws("iam").get_role(RoleName="g7chaos-fis")["Role"]["Arn"]

    def experiment(self, targets: dict, actions: dict) -> str:
        fis = self.aws("fis")
        template = fis.create_experiment_template(description="integration test", roleArn=self.fis_role(),
                                                  stopConditions=[{"source": "none"}], targets=targets,
                                                  actions=actions)["experimentTemplate"]
        return fis.start_experiment(experimentTemplateId=template["id"])["experiment"]["id"]

    def experiment_status(self, experiment_id: str) -> str:
        return self.aws("fis").get_experiment(id=experiment_id)["experiment"]["state"]["status"]


def exec_in(twin, context: str, pod: str, namespace: str, command: list[str]) -> tuple[int, str, str]:
    ws = stream(twin.core(context).connect_get_namespaced_pod_exec, pod, namespace, command=command,
                stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    ws.run_forever(timeout=10)
    out, err = ws.read_stdout() or "", ws.read_stderr() or ""
    code = ws.returncode
    ws.close()
    return code, out, err


class ManualClock:
    """The World clock's interface with a time the test advances."""

    def __init__(self, time_scale: float):
        self.time_scale = time_scale
        self.t = 1_000_000.0

    def wall(self, real_world_seconds: float) -> float:
        return real_world_seconds / self.time_scale

    def now(self) -> float:
        return self.t
