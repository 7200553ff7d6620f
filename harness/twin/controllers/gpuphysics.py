"""GPU physics: thermal slowdown. Above 83 C a GPU drops its SM clock; below, the clock comes back.

The serving layer reads the clock (decode slows with it), the exporter shows it, and the
temperature alarm fires on the same field, so one injected temperature shows in every signal a real
thermal event does.
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.world import DCGM_FI_DEV_SM_CLOCK


class GpuPhysics(Controller):
    name = "gpu-physics"

    def reconcile(self, now: float) -> None:
        for node in list(self.world.nodes.values()):
            for gpu in node.gpus:
                clock = gpu.fields[DCGM_FI_DEV_SM_CLOCK]
                if gpu.throttled:
                    if clock > hardware.GPU_SM_CLOCK_THROTTLED_MHZ:
                        gpu.fields[DCGM_FI_DEV_SM_CLOCK] = hardware.GPU_SM_CLOCK_THROTTLED_MHZ
                elif clock == hardware.GPU_SM_CLOCK_THROTTLED_MHZ:
                    gpu.fields[DCGM_FI_DEV_SM_CLOCK] = hardware.GPU_SM_CLOCK_MHZ
