"""`g7chaos twin up`: the embedded G7 EKS twin in the foreground, until Ctrl-C or SIGTERM."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from harness.twin.profiles import PROFILES, UnknownProfile, parse_profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="twin_action", required=True)
    up = sub.add_parser("up", help="run the twin in the foreground (Ctrl-C stops it)")
    up.add_argument("--profile", default="article",
                    help=f"comma-separated profiles, composed left to right (known: {', '.join(PROFILES)})")
    up.add_argument("--nodes-per-az", type=int, default=2, help="g7.48xlarge nodes per AZ in the 13B nodegroups")
    up.add_argument("--time-scale", type=float, default=30.0, help="control-plane time compression (30 = a 2 min notice lasts 4 s)")
    up.add_argument("--seed", type=int, default=7)
    up.add_argument("--flaky-api", type=float, default=0.0, metavar="FRACTION",
                    help="fail this fraction of Kubernetes and AWS API calls (500s, 429s, timeouts) and cut watch "
                         "streams, to prove a client survives a flaky control plane (default 0: off)")
    up.add_argument("--rbac", type=Path, default=None, metavar="FILE",
                    help="enforce this RBAC file (e.g. deploy/rbac.yaml, ServiceAccount g7chaos/g7chaos) on the "
                         "Kubernetes APIs: a call it does not allow is answered 403 Forbidden, as a real API server "
                         "answers it (default: everything allowed)")
    up.add_argument("--out", type=Path, default=Path("reports/twin"), help="where kubeconfig and endpoints.json go")


def run(args: argparse.Namespace) -> int:
    try:
        parse_profile(args.profile)
    except UnknownProfile as exc:
        print(f"g7chaos: {exc}", file=sys.stderr)
        return 2
    if args.nodes_per_az < 1 or args.time_scale <= 0:
        print("g7chaos: --nodes-per-az must be >= 1 and --time-scale > 0", file=sys.stderr)
        return 2
    if args.rbac is not None and not args.rbac.is_file():
        print(f"g7chaos: --rbac {args.rbac}: no such file", file=sys.stderr)
        return 2
    if not 0.0 <= args.flaky_api < 1.0:
        print("g7chaos: --flaky-api is a fraction of calls in [0, 1), e.g. 0.1", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return asyncio.run(_up(args))


async def _up(args: argparse.Namespace) -> int:
    from harness.twin import heap
    from harness.twin.server import TwinServer
    heap.keep_settled()
    twin = TwinServer(profile=args.profile, nodes_per_az=args.nodes_per_az, time_scale=args.time_scale,
                      seed=args.seed, out_dir=args.out, flaky_api=args.flaky_api,
                      rbac=str(args.rbac) if args.rbac else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, twin.request_stop)
    try:
        endpoints = await twin.start()
    except Exception as exc:
        print(f"g7chaos: the twin could not start: {exc}", file=sys.stderr)
        await twin.stop()
        return 4
    print(usage_text(endpoints), flush=True)
    await twin.run_forever()
    print("twin stopped", flush=True)
    return 0


def usage_text(e: dict) -> str:
    out = Path(e["kubeconfig"]).parent
    ctx = e["contexts"][0]
    flaky = f", failing {e['flaky_api']:.0%} of API calls" if e.get("flaky_api") else ""
    lines = [
        f"G7 EKS twin serving (profile {e['profile']}, time scale {e['time_scale']:g}x, region {e['region']}{flaky})",
        f"  endpoints file  {out / 'endpoints.json'}",
        "",
        "kubectl:",
        f"  export KUBECONFIG={e['kubeconfig']}",
        f"  kubectl --context {ctx} get nodes -L node.kubernetes.io/instance-type,topology.kubernetes.io/zone",
        f"  kubectl --context {ctx} -n kube-system get pods -l k8s-app=dcgm-server -o wide",
        f"  kubectl --context {ctx} -n kube-system exec POD -- dcgmi discovery -l",
        "",
        "AWS CLI (credentials testing/testing, account 123456789012):",
        "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=" + e["region"],
        f"  aws --endpoint-url {e['aws_endpoint']} ec2 describe-instances",
        f"  aws --endpoint-url {e['aws_endpoint']} cloudwatch describe-alarms",
    ]
    if e.get("aws_endpoints", {}).get("arc-zonal-shift"):
        lines.append(f"  aws --endpoint-url {e['aws_endpoints']['arc-zonal-shift']} arc-zonal-shift list-managed-resources")
    if e.get("inference_url"):
        lines += ["", "inference (OpenAI-compatible, SSE streaming):",
                  f"  curl -N {e['inference_url']}/v1/completions -H 'content-type: application/json' "
                  "-d '{\"model\": \"llama-13b-fp8\", \"prompt\": \"hello\", \"max_tokens\": 16, \"stream\": true}'"]
    if e.get("imds_url_template"):
        lines += ["", "instance metadata (IMDS) per node:",
                  f"  curl {e['imds_url_template'].format(node='NODE')}/latest/meta-data/spot/instance-action"]
    lines += ["", "Ctrl-C stops the twin."]
    return "\n".join(lines)
