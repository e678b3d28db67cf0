"""The operator process of the e2e tests: `shimshift run` with tests.e2e.simnodes' node steps, not SSH.

    python -m tests.e2e.run_operator run --kubeconfig ... [any other `shimshift run` flag]

Takes exactly `shimshift run`'s arguments ("run" included, so the chart's Deployment arguments pass
unchanged) and environment, builds the same settings, and hands `shimshift.entry.handlers.run_operator` the
simulated node ports as a Python object. The shipped CLI has no way to do this:
no flag or environment variable of the operator names code to import. Needs the repository root and
operator/ on PYTHONPATH (tests/e2e/conftest.py's Operator sets both).

SHIMSHIFT_SIM_CLOCK_OFFSET (seconds, may be negative) moves the engine's wall clock by that much, so a
test can put the operator a few seconds before a maintenance window opens (windows start on the
minute) instead of waiting up to a minute of real time for one.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from shimshift.engine import utcnow
from shimshift.entry.cli import EXIT_USAGE, build_parser
from shimshift.entry.handlers import RunSettings, run_operator
from shimshift.model.errors import ShimshiftError
from tests.e2e.simnodes import node_ports


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["run"]:
        print("usage: python -m tests.e2e.run_operator run [shimshift run flags]", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser().parse_args(argv)
    try:
        settings = RunSettings.from_flags(vars(args), os.environ)
    except ShimshiftError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return run_operator(settings, node_ports=node_ports, clock=shifted_clock(os.environ))


def shifted_clock(env: Mapping[str, str]) -> Callable[[], dt.datetime] | None:
    """The wall clock moved by SHIMSHIFT_SIM_CLOCK_OFFSET seconds; None (the real one) without it."""
    offset = float(env.get("SHIMSHIFT_SIM_CLOCK_OFFSET") or 0)
    if not offset:
        return None
    shift = dt.timedelta(seconds=offset)
    return lambda: utcnow() + shift


if __name__ == "__main__":
    sys.exit(main())
