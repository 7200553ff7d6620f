"""A node's cgroup v2 hierarchy as a privileged pod with the host's /sys/fs/cgroup mounted sees it.

EKS AL2023 nodes run the kubelet with the systemd cgroup driver on cgroup v2 (nodeadm's kubelet defaults), and
containerd names each container's cgroup from the pod's slice: a container of a Burstable pod lives in
`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _ for ->.slice/cri-containerd-<id>.scope`,
a Guaranteed pod's slice sits directly under `kubepods.slice` (FIDELITY STALL-3). The twin derives that tree from the
pods bound to the node, so the only way to find a container's cgroup is the one a real operator has: its pod's
qosClass, uid and containerStatuses[].containerID.

The freezer (FIDELITY STALL-2): writing 1 to a cgroup's `cgroup.freeze` stops every process in it and in its
descendants until 0 is written; `cgroup.events` then reads `frozen 1`. A frozen serving container answers nothing,
which the serving layer does (`ServingFleet.freeze`). A cgroup that is gone (its container exited, its pod was
deleted) takes its freeze with it.

Who may write: a container that is not privileged gets "Permission denied" (assumed, the stricter choice: SELinux-
or AppArmor-confined runtimes refuse it, an unconfined one might not), a read-only mount "Read-only file system".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.twin.kube.store import Obj

HOST_CGROUP = "/sys/fs/cgroup"
ROOT_SLICE = "kubepods.slice"           # FIDELITY STALL-4: systemd driver, cgroup root /
SCOPE_PREFIX = "cri-containerd"          # FIDELITY STALL-3: containerd's CRI prefix for systemd scopes
QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")


def pod_slice(pod: Obj) -> str:
    """The pod's systemd slice under the kubelet's cgroup root (kubelet's cgroup name, `-` escaped to `_`)."""
    uid = pod["metadata"]["uid"].replace("-", "_")
    qos = (pod.get("status") or {}).get("qosClass") or "Burstable"
    if qos == "Guaranteed":
        return f"{ROOT_SLICE}/kubepods-pod{uid}.slice"
    q = qos.lower()
    return f"{ROOT_SLICE}/kubepods-{q}.slice/kubepods-{q}-pod{uid}.slice"


def container_scopes(pod: Obj) -> dict[str, str]:
    """cgroup path (relative to the hierarchy's root) -> container name, for every container that has started."""
    out = {}
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        runtime, _, cid = (cs.get("containerID") or "").partition("://")
        if runtime == "containerd" and cid and "running" in (cs.get("state") or {}):
            out[f"{pod_slice(pod)}/{SCOPE_PREFIX}-{cid}.scope"] = cs["name"]
    return out


@dataclass
class Tree:
    """The directories of one node's kubepods hierarchy and which pod owns each container scope."""

    dirs: set[str]
    scopes: dict[str, str]            # scope path -> pod name (namespace/name)

    @classmethod
    def of(cls, pods: list[Obj]) -> "Tree":
        dirs = {ROOT_SLICE, f"{ROOT_SLICE}/kubepods-burstable.slice", f"{ROOT_SLICE}/kubepods-besteffort.slice"}
        scopes: dict[str, str] = {}
        for pod in pods:
            found = container_scopes(pod)
            if not found:
                continue
            dirs.add(pod_slice(pod))
            for path in found:
                dirs.add(path)
                scopes[path] = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        return cls(dirs, scopes)


def frozen(path: str, freeze: set[str]) -> bool:
    """FIDELITY STALL-2. Frozen by its own setting or by any ancestor's (cgroup-v2.rst, cgroup.freeze)."""
    parts = path.split("/")
    return any("/".join(parts[:i]) in freeze for i in range(1, len(parts) + 1))


def _mount(pod: Obj, container: str | None) -> tuple[Obj | None, str | None, bool]:
    """(container spec, mount path of the host's /sys/fs/cgroup in it or None, read-only)."""
    spec = pod["spec"]
    containers = spec.get("containers") or []
    c = next((x for x in containers if x.get("name") == container), containers[0] if containers else None)
    if c is None:
        return None, None, False
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        host = ((volumes.get(m.get("name")) or {}).get("hostPath") or {}).get("path", "")
        if host.rstrip("/") == HOST_CGROUP:
            return c, m["mountPath"].rstrip("/"), bool(m.get("readOnly"))
    return c, None, False


def privileged(container: Obj | None) -> bool:
    """FIDELITY STALL-6 (assumed): only a privileged container may write another container's cgroup files."""
    return bool(((container or {}).get("securityContext") or {}).get("privileged"))


class CgroupFs:
    """`cat` and `echo N > .../cgroup.freeze` in a pod on a node, against that node's hierarchy.

    `freeze` holds, per node, the cgroups whose cgroup.freeze reads 1; `on_change(node)` is told after every write
    so the serving layer can stop or resume the replicas whose containers are now frozen or thawed."""

    def __init__(self, pods_on: Callable[[str], list[Obj]], freeze: dict[str, set[str]],
                 on_change: Callable[[str], None]):
        self.pods_on = pods_on
        self.freeze = freeze
        self.on_change = on_change

    def tree(self, node: str) -> Tree:
        tree = Tree.of(self.pods_on(node))
        held = self.freeze.get(node)
        if held:
            held &= tree.dirs                 # a removed cgroup takes its setting with it
        return tree

    def frozen_pods(self, node: str) -> set[str]:
        tree, held = self.tree(node), self.freeze.get(node, set())
        return {owner for path, owner in tree.scopes.items() if frozen(path, held)}

    def _resolve(self, pod: Obj, container: str | None, path: str) -> tuple[str | None, Obj | None, bool]:
        c, mount, read_only = _mount(pod, container)
        if mount is None or not path.startswith(mount + "/"):
            return None, c, read_only
        return path[len(mount) + 1:], c, read_only

    def cat(self, node: str, pod: Obj, container: str | None, path: str) -> tuple[int, str, str]:
        rel, _c, _ro = self._resolve(pod, container, path)
        missing = (1, "", f"cat: can't open '{path}': No such file or directory\n")
        if rel is None:
            return missing
        directory, _, name = rel.rpartition("/")
        tree = self.tree(node)
        if directory not in tree.dirs:
            return missing
        held = self.freeze.get(node, set())
        if name == "cgroup.events":
            populated = int(any(s == directory or s.startswith(directory + "/") for s in tree.scopes))
            return 0, f"populated {populated}\nfrozen {int(frozen(directory, held))}\n", ""
        if name == "cgroup.freeze":
            return 0, f"{int(directory in held)}\n", ""
        return missing

    def write(self, node: str, pod: Obj, container: str | None, path: str, value: str) -> tuple[int, str, str]:
        rel, c, read_only = self._resolve(pod, container, path)
        if rel is None:
            return 1, "", f"sh: can't create {path}: nonexistent directory\n"
        directory, _, name = rel.rpartition("/")
        tree = self.tree(node)
        if directory not in tree.dirs or name != "cgroup.freeze":
            return 1, "", f"sh: can't create {path}: nonexistent directory\n"
        if read_only:
            return 1, "", f"sh: can't create {path}: Read-only file system\n"
        if not privileged(c):
            return 1, "", f"sh: can't create {path}: Permission denied\n"
        if value not in ("0", "1"):
            return 1, "", "sh: write error: Invalid argument\n"
        held = self.freeze.setdefault(node, set())
        (held.add if value == "1" else held.discard)(directory)
        self.on_change(node)
        return 0, "", ""
