"""The set of controllers a well-built deployment runs, in the order they reconcile each tick."""
from __future__ import annotations

from harness.twin.controllers.autorepair import NodeAutoRepair
from harness.twin.controllers.autoscaler import ReplicaAutoscaler
from harness.twin.controllers.base import ControllerManager
from harness.twin.controllers.deviceplugin import DevicePluginController
from harness.twin.controllers.disruption import Drainer, DisruptionController
from harness.twin.controllers.efaphysics import EfaPhysics
from harness.twin.controllers.gpuphysics import GpuPhysics
from harness.twin.controllers.mpilauncher import MpiLauncher
from harness.twin.controllers.nodemonitor import NodeMonitoringAgent
from harness.twin.controllers.nodestatus import NodeStatusController
from harness.twin.controllers.podlifecycle import PodLifecycleController
from harness.twin.controllers.scheduler import Scheduler
from harness.twin.controllers.spot import SpotHandler
from harness.twin.controllers.workloads import WorkloadController
from harness.twin.fleet.runtime import Fleet


def build_manager(fleet: Fleet) -> ControllerManager:
    drainer = Drainer(fleet)
    return ControllerManager(fleet, [
        GpuPhysics(fleet),
        MpiLauncher(fleet),
        EfaPhysics(fleet),
        DevicePluginController(fleet),
        NodeStatusController(fleet),
        NodeMonitoringAgent(fleet),
        ReplicaAutoscaler(fleet),
        WorkloadController(fleet),
        Scheduler(fleet),
        PodLifecycleController(fleet),
        SpotHandler(fleet, drainer),
        NodeAutoRepair(fleet, drainer),
        drainer,
        DisruptionController(fleet),
    ])
