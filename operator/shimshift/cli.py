"""The `shimshift` command: `version`, `validate` (and, as they land, `render`, `plan`, `run`).

`main(argv)` returns the exit status, so tests drive the CLI directly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from shimshift import __version__
from shimshift.manifests import expand_paths, read_documents
from shimshift.model import check_nodemigration
from shimshift.model.errors import Problem
from shimshift.resources import data_path, load_crd

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


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
        text = sys.stdin.read() if str(item) == "-" else None
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


def _cmd_crd(args: argparse.Namespace, out: TextIO) -> int:
    out.write(data_path("crds", "nodemigration.yaml").read_text(encoding="utf-8"))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shimshift",
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

    p = sub.add_parser("crd", help="print the NodeMigration CRD (for kubectl apply -f -)")
    p.set_defaults(func=_cmd_crd)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help and usage errors
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    stream = out if out is not None else sys.stdout
    status: int = args.func(args, stream)
    return status


if __name__ == "__main__":
    sys.exit(main())
