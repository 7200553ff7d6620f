"""EKS `nodeRepairConfig` as the real API keeps and checks it, where moto does not.

moto's create_nodegroup drops `nodeRepairConfig` (only update_nodegroup_config stores it), and accepts any
override. EKS stores it at creation and requires every value of an override ("If you use this, you must specify
all the values": nodeMonitoringCondition, nodeUnhealthyReason, minRepairWaitTimeMins >= 1, repairAction one of
Replace | Reboot | NoAction; https://docs.aws.amazon.com/eks/latest/APIReference/API_NodeRepairConfigOverrides.html).
The twin rejects an incomplete override with InvalidParameterException (the error code is assumed: EKS's
code for a bad parameter) at either call. FIDELITY REPAIR-2.
"""
from __future__ import annotations

from typing import Any

OVERRIDE_KEYS = ("nodeMonitoringCondition", "nodeUnhealthyReason", "minRepairWaitTimeMins", "repairAction")
ACTIONS = ("Replace", "Reboot", "NoAction")


def validate(config: dict[str, Any] | None) -> None:
    from moto.eks.exceptions import InvalidParameterException

    for override in (config or {}).get("nodeRepairConfigOverrides") or []:
        missing = [k for k in OVERRIDE_KEYS if override.get(k) in (None, "")]
        if missing:
            raise InvalidParameterException(
                f"nodeRepairConfigOverrides must specify all values; missing: {', '.join(missing)}")
        if int(override["minRepairWaitTimeMins"]) < 1 or override["repairAction"] not in ACTIONS:
            raise InvalidParameterException(
                "nodeRepairConfigOverrides: minRepairWaitTimeMins must be at least 1 and repairAction one of "
                + " | ".join(ACTIONS))


def install() -> None:
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    if getattr(EKSResponse, "_twin_node_repair", False):
        return
    create, update = EKSResponse.create_nodegroup, EKSBackend.update_nodegroup_config

    def create_nodegroup(self: Any) -> Any:
        config = self._get_param("nodeRepairConfig")
        validate(config)
        result = create(self)
        if config is not None:
            self.eks_backend.clusters[self._get_param("name")].nodegroups[
                self._get_param("nodegroupName")].node_repair_config = config
        return result

    def update_nodegroup_config(self: Any, *args: Any, **kwargs: Any) -> Any:
        validate(kwargs.get("node_repair_config"))
        return update(self, *args, **kwargs)

    EKSResponse.create_nodegroup = create_nodegroup  # type: ignore[method-assign]
    EKSBackend.update_nodegroup_config = update_nodegroup_config  # type: ignore[method-assign]
    EKSResponse._twin_node_repair = True  # type: ignore[attr-defined]
