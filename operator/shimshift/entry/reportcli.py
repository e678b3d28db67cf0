"""`shimshift report NAME`: the plan report the operator stored for a NodeMigration, whole.

Plan mode stores the report in one ConfigMap or, when it does not fit, gzipped and split over several
(shimshift.kube.reportstore); this reads the index in `<NAME>-plan`, joins the pieces, checks the size
and sha256 and prints the format asked for, byte for byte what `shimshift plan` renders. Read-only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from shimshift.model.errors import ShimshiftError

EXIT_OK = 0
EXIT_INVALID = 1

REPORT_HELP = "print the plan report the operator stored for a NodeMigration (joined from its ConfigMaps)"
REPORT_DESCRIPTION = (
    "Read the plan report of NodeMigration NAME from the ConfigMaps the operator wrote in Plan mode "
    "(<NAME>-plan and, for large fleets, <NAME>-plan-1, ...: gzipped pieces), join and check it, and "
    "print it or write it to a file. Read-only."
)


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the NodeMigration")
    p.add_argument(
        "--format",
        choices=("md", "markdown", "json", "html"),
        default="md",
        help="report format (default md)",
    )
    p.add_argument(
        "-n",
        "--namespace",
        default="shimshift-system",
        help="the operator's namespace, where the report ConfigMaps are (default shimshift-system)",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")


def run_report(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: the Kubernetes client is loaded only by the commands that talk to a cluster.
    from shimshift.kube.api import Kube, load_api_client
    from shimshift.kube.reportstore import read_report, report_file

    try:
        file = report_file(args.format)
        kube = Kube(load_api_client(args.kubeconfig, args.context))
        try:
            text = read_report(kube, args.namespace, args.name, file)
        finally:
            kube.close()
        if args.output:
            target = Path(args.output)
            part = target.with_name(target.name + ".part")
            part.write_text(text, encoding="utf-8")
            part.replace(target)
            print(f"wrote {target}: {len(text.encode())} bytes", file=out)
        else:
            out.write(text)
    except (OSError, ValueError, ShimshiftError) as e:
        print(f"error: {e}", file=out)
        return EXIT_INVALID
    return EXIT_OK
