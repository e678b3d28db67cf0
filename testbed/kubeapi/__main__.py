"""``python -m testbed.kubeapi --port P --kubeconfig FILE [--seed FILE.yaml ...]``: serve until killed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from .runner import Emulator, EmulatorConfig, write_kubeconfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m testbed.kubeapi", description="Emulated Kubernetes API server"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    p.add_argument("--kubeconfig", type=Path, help="write a kubeconfig pointing at the server here")
    p.add_argument("--seed", type=Path, action="append", default=[], help="YAML file of objects to create")
    p.add_argument(
        "--time-factor",
        type=float,
        default=1.0,
        help="multiplies grace periods and pod start-up delays (0.1 = ten times faster)",
    )
    p.add_argument("--pod-startup-seconds", type=float, default=1.0)
    p.add_argument(
        "--no-controllers", action="store_true", help="no scheduler, pod lifecycle or workload controllers"
    )
    p.add_argument(
        "--no-kubelet",
        action="store_true",
        help="do not start pods (leave them Pending for an external kubelet)",
    )
    p.add_argument("--no-kopf-peering", action="store_true", help="do not pre-install kopf's peering CRDs")
    p.add_argument("--history-size", type=int, default=50_000, help="watch events kept for resumption")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        time_factor=args.time_factor,
        pod_startup_seconds=args.pod_startup_seconds,
        history_size=args.history_size,
        kopf_peering=not args.no_kopf_peering,
        controllers=not args.no_controllers,
        simulate_kubelet=not args.no_kubelet,
    )
    emulator = Emulator(config)
    url = await emulator.start()
    for path in args.seed:
        emulator.seed(path)
    if args.kubeconfig:
        write_kubeconfig(args.kubeconfig, url)
    print(
        f"kubeapi emulator serving on {url}"
        + (f" (kubeconfig: {args.kubeconfig})" if args.kubeconfig else ""),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    if args.verbose:
        logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
