"""`dcgmi test --inject` in a node's DCGM pod, and holding an injected value for as long as a fault lasts.

An injected value is one sample in the hostengine's cache: the next real sample of the field replaces it
unless the injection was stamped in the future (`--offset <seconds>`, default 1; NVIDIA/DCGM
dcgmi/CommandLineParser.cpp, DcgmiTest.cpp). DCGM's own policy tests stamp theirs 60 s ahead. A fault that
must last therefore injects with `--offset HOLD_S` and re-injects well before that runs out, for as long as it
is in place; the revert injects the value to restore with the same offset, so its newer timestamp supersedes
the held one at once (health watches and the exporter read the newest sample).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Callable

from harness.faults.base import FaultError
from harness.faults.podexec import pod_exec, pod_gone

HOLD_S = 60                 # deployment seconds each injection is stamped ahead (as DCGM's own policy tests do)
REFRESH_S = HOLD_S / 3      # re-injected this often (deployment seconds), so a slow exec never lets it lapse


def dcgmi_inject(target: Any, context: str, namespace: str, pod: str, gpu: int, field: int, value: float,
                 offset: int = HOLD_S) -> None:
    shown = int(value) if float(value).is_integer() else value
    command = ["dcgmi", "test", "--inject", "--gpuid", str(gpu), "-f", str(field), "-v", str(shown),
               "--offset", str(int(offset))]
    out = pod_exec(target.kube(context), namespace, pod, command)
    if out.exit_code != 0 or "Successfully injected" not in (out.stdout or ""):
        raise FaultError(f"{' '.join(command)} in {namespace}/{pod} exited {out.exit_code}: "
                         f"{(out.stderr or out.stdout).strip()[:300]}")


def inject_values(target: Any, pod: dict[str, Any], values: Iterable[tuple[int, int, float]],
                  skip_gone: bool = False) -> None:
    """Inject `(gpu, field, value)`s, in order, through one node's DCGM pod (`pod`: its context, namespace and
    name, as a journal entry holds them), each stamped HOLD_S ahead. With `skip_gone`, a pod that is gone (its
    node repaired or replaced) is skipped: on a new node there is nothing left to hold or to put back."""
    if skip_gone and pod_gone(target.kube(pod["context"]), pod["namespace"], pod["pod"]):
        return
    for gpu, field, value in values:
        dcgmi_inject(target, pod["context"], pod["namespace"], pod["pod"], gpu, field, value)


class Holder:
    """Re-runs `inject_all` every REFRESH_S of deployment time until stopped (a thread of the fault's process)."""

    def __init__(self, inject_all: Callable[[], None], refresh_wall_s: float, name: str):
        self._inject_all = inject_all
        self._refresh = max(0.05, refresh_wall_s)
        self._stop = threading.Event()
        self.failures = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._refresh):
            try:
                self._inject_all()
            except Exception:       # a node gone (repaired) or an exec refused: the next round tries again
                self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
