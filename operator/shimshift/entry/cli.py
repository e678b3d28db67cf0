"""The `shimshift` command: `version`, `validate`, `render`, `plan`, `snapshot`, `run`, `status`, `crd`.

`main(argv)` returns the exit status, so tests drive the CLI directly. What it prints goes through
`VisibleText`: node facts, manifests and error messages reach the terminal with their control
characters as visible escapes (a raw ESC from a node could otherwise drive the admin's terminal); files
it writes are untouched.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from shimshift import __version__
from shimshift.entry import plancli, reportcli, statusview
from shimshift.entry.manifests import expand_paths, read_documents, read_stdin
from shimshift.model import check_nodemigration
from shimshift.model.errors import Problem, ShimshiftError
from shimshift.model.limits import MAX_FACTS_BYTES, MAX_NODE_FILE_BYTES, read_text
from shimshift.model.text import visible
from shimshift.resources import crds_text, load_crd

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 64  # EX_USAGE: distinct from plan's 2 (warnings) and 3 (blockers)


def _cmd_version(args: argparse.Namespace, out: TextIO) -> int:
    crd = load_crd()
    versions = ", ".join(v["name"] for v in crd["spec"]["versions"])
    print(f"shimshift {__version__} (API {crd['spec']['group']} {versions})", file=out)
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    crd = load_crd()
    failed = checked = 0
    for item in expand_paths(args.filename):
        if isinstance(item, Problem):
            print(f"error: {item}", file=out)
            failed += 1
            continue
        try:
            text = read_stdin(sys.stdin) if str(item) == "-" else None
        except (UnicodeDecodeError, OSError) as e:
            reason = "is not UTF-8 text" if isinstance(e, UnicodeDecodeError) else f"cannot be read: {e}"
            print(f"error: {Problem(str(item), reason)}", file=out)
            failed += 1
            continue
        docs, problems = read_documents(item, text)
        for problem in problems:
            print(f"error: {problem}", file=out)
            failed += 1
        for doc in docs:
            checked += 1
            defaulted, doc_problems = check_nodemigration(doc.body, crd)
            name = ""
            if isinstance(doc.body, dict) and isinstance(doc.body.get("metadata"), dict):
                name = f" ({doc.body['metadata'].get('name', '?')})"
            if doc_problems:
                failed += 1
                print(f"{doc.source}{name}: invalid", file=out)
                for problem in doc_problems:
                    print(f"  {problem}", file=out)
            elif not args.quiet:
                mode = defaulted["spec"]["mode"] if defaulted else "?"
                print(f"{doc.source}{name}: valid (mode {mode})", file=out)
    if checked == 0 and failed == 0:
        print("error: no NodeMigration documents found", file=out)
        return EXIT_INVALID
    return EXIT_INVALID if failed else EXIT_OK


def _cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    """Render one node's containerd files from a NodeMigration and a facts file (rendering/)."""
    import os
    from pathlib import Path

    from shimshift.model import parse_nodemigration
    from shimshift.rendering import ClientCert, RegistryMaterial, facts_from_json_text, render_node_config
    from shimshift.rendering.output import listing

    try:
        facts = facts_from_json_text(read_text(Path(args.facts), MAX_FACTS_BYTES), source=args.facts)
        docs, problems = read_documents(Path(args.filename))
        if problems or len(docs) != 1:
            for problem in problems:
                print(f"error: {problem}", file=out)
            print(f"error: {args.filename}: expected exactly one NodeMigration", file=out)
            return EXIT_INVALID
        spec = parse_nodemigration(docs[0].body, load_crd(), source=args.filename).spec
        cas = {h: read_text(Path(f), MAX_NODE_FILE_BYTES) for h, f in (a.split("=", 1) for a in args.ca)}
        clients = {}
        for arg in args.client_cert:
            host, files = arg.split("=", 1)
            cert, key = files.split(",", 1)
            clients[host] = ClientCert(
                read_text(Path(cert), MAX_NODE_FILE_BYTES), read_text(Path(key), MAX_NODE_FILE_BYTES)
            )
        rendered = render_node_config(spec, facts, RegistryMaterial(cas, clients))
    except (OSError, ValueError, ShimshiftError) as e:
        print(f"error: {e}", file=out)
        return EXIT_INVALID
    current = {rendered.layout.config_file: facts.containerd_config}
    if args.out:
        root = Path(args.out)
        for f in rendered.files:
            target = root / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)  # created with its mode: a key is never readable by others
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f.mode)
            with os.fdopen(fd, "wb") as stream:
                stream.write(f.content)
            target.chmod(f.mode)
        print(f"wrote {len(rendered.files)} files under {root}", file=out)
        print("\n".join(rendered.report.lines()), file=out)
        print(rendered.diff(current), file=out, end="")
    else:
        out.write(listing(rendered, current, f"{args.filename} on node {facts.node}"))
    return EXIT_OK


def _cmd_crd(args: argparse.Namespace, out: TextIO) -> int:
    out.write(crds_text())
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    import os

    from shimshift.entry.handlers import RunSettings, run_operator  # imports kopf: only `run` needs it

    try:
        settings = RunSettings.from_flags(vars(args), os.environ)
    except ShimshiftError as e:
        print(f"error: {e}", file=out)
        return EXIT_USAGE
    return run_operator(settings)


def _cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    return plancli.run_plan(args, out)


def _cmd_snapshot(args: argparse.Namespace, out: TextIO) -> int:
    return plancli.run_snapshot(args, out)


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    return statusview.run_status(args, out)


def _cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    return reportcli.run_report(args, out)


def build_parser(prog: str = "shimshift") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Migrate Kubernetes nodes from Docker Engine + dockershim to containerd, safely.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("version", help="print the version and the API it serves")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser(
        "validate",
        help="check NodeMigration manifests offline (CRD schema + semantic checks)",
        description="Check NodeMigration manifests against the CRD schema and the checks the operator "
        "makes. Prints every problem with its field path; exits 1 if any manifest is invalid.",
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE",
        help="a manifest file, a directory of them, or - for stdin (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "render",
        help="render one node's containerd config.toml and certs.d files (offline, from a facts file)",
        description="Render the containerd files a NodeMigration gives one node, from that node's facts "
        "(JSON, see examples/facts/). Prints the report, the files (client keys as a hash) and a diff; "
        "--out writes the files under a directory instead. Secrets come from --ca / --client-cert files.",
    )
    p.add_argument("-f", "--filename", required=True, metavar="NODEMIGRATION", help="the manifest")
    p.add_argument("--facts", required=True, metavar="FACTS.json", help="the node's facts")
    p.add_argument("--out", metavar="DIR", help="write the files under DIR (DIR/etc/containerd/...)")
    p.add_argument("--ca", action="append", default=[], metavar="HOST=FILE", help="CA PEM for caSecretRef")
    p.add_argument(
        "--client-cert", action="append", default=[], metavar="HOST=CERT,KEY", help="for clientCertSecretRef"
    )
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser(
        "run",
        help="run the operator (kopf) against the cluster of KUBECONFIG or the in-cluster service account",
        description="Run the operator. Each flag also reads an environment variable (flag wins); the "
        "effective settings are logged once at start, secrets redacted.",
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (env KUBECONFIG; default: in-cluster)")
    p.add_argument("--namespace", help="the operator's namespace (env SHIMSHIFT_NAMESPACE)")
    p.add_argument(
        "--canary-namespace",
        help="where the verify step's canary pods run (env SHIMSHIFT_CANARY_NAMESPACE; default --namespace)",
    )
    p.add_argument("--peering", help="kopf peering name for HA replicas (env SHIMSHIFT_PEERING)")
    p.add_argument("--log-format", choices=["full", "plain", "json"], help="env SHIMSHIFT_LOG_FORMAT")
    p.add_argument("--metrics-port", help="Prometheus /metrics port, 0 = off (env SHIMSHIFT_METRICS_PORT)")
    p.add_argument("--identity", help="this replica's name in leases (env SHIMSHIFT_IDENTITY; $POD_NAME)")
    p.add_argument(
        "--node-name",
        help="the node this operator runs on, migrated last while it acts (env SHIMSHIFT_NODE_NAME)",
    )
    p.add_argument(
        "--lease-ttl", help="seconds before a silent replica's claim lapses (env SHIMSHIFT_LEASE_TTL)"
    )
    p.add_argument("--liveness", metavar="URL", help="kopf health endpoint, e.g. http://0.0.0.0:8081/healthz")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("plan", help=plancli.PLAN_HELP, description=plancli.PLAN_DESCRIPTION)
    plancli.add_plan_arguments(p)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("snapshot", help=plancli.SNAPSHOT_HELP, description=plancli.SNAPSHOT_DESCRIPTION)
    plancli.add_snapshot_arguments(p)
    p.set_defaults(func=_cmd_snapshot)

    p = sub.add_parser("status", help=statusview.HELP, description=statusview.DESCRIPTION)
    statusview.add_status_arguments(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("report", help=reportcli.REPORT_HELP, description=reportcli.REPORT_DESCRIPTION)
    reportcli.add_report_arguments(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("crd", help="print the NodeMigration CRD (for kubectl apply -f -)")
    p.set_defaults(func=_cmd_crd)
    return parser


class VisibleText(io.TextIOBase):
    """A text stream that writes to `target` with control and bidi characters (but newline and tab)
    as visible escapes, so no text from a node or a manifest can drive the terminal."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._target.write(visible(text, keep="\n\t"))
        return len(text)

    def flush(self) -> None:
        self._target.flush()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, *, prog: str = "shimshift") -> int:
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help and usage errors
        return EXIT_OK if e.code in (0, None) else EXIT_USAGE
    stream = cast(TextIO, VisibleText(out if out is not None else sys.stdout))
    status: int = args.func(args, stream)
    stream.flush()
    return status


def kubectl_main() -> int:
    """The kubectl plugin `kubectl-shimshift` (krew's naming): `kubectl shimshift status NAME`."""
    return main(prog="kubectl shimshift")


if __name__ == "__main__":
    sys.exit(main())
