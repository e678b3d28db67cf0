"""`shimshift status NAME [--watch]`: a running NodeMigration at a glance, from a workstation.

`render_status` is pure: the NodeMigration object and its node records in, the text out (every node's phase,
step and time in that step, the counts, a progress bar for the fleet and for the images step, how long
nodes were and are cordoned, the conditions, each node's last error). `run_status` reads them
through `shimshift.kube.progress` and prints one view, or with `--watch` a new view each time the
migration changes, until it is Succeeded or Failed.

The images bar is in bytes: each node's record holds the bytes its images step moves (Docker's sizes
of the images it moves, known when the step starts) and the bytes moved so far (written as each
transfer or pull ends, at most every few seconds), so the bar shows the bytes moved of the bytes to
move, for the fleet (the nodes whose images step started) and for each node in it now. Records of an
older shimshift carry no bytes: with any of those the bar counts nodes instead, and says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from shimshift.model import keys
from shimshift.model.errors import ShimshiftError
from shimshift.model.status import NodePhase
from shimshift.steps.images.fit import human_bytes

EXIT_OK = 0
EXIT_ERROR = 1
BAR_WIDTH = 30
NODE_BAR_WIDTH = 20
#: NodeMigration phases after which nothing more starts: `--watch` ends there.
FINISHED = frozenset({"Succeeded", "Failed"})
DONE_PHASES = frozenset({str(NodePhase.SUCCEEDED), str(NodePhase.SKIPPED)})
IN_FLIGHT_PHASES = frozenset({str(NodePhase.IN_PROGRESS), str(NodePhase.ROLLING_BACK)})

HELP = "show a NodeMigration's progress: every node's phase and step, counts, conditions (--watch: follow it)"
DESCRIPTION = (
    "Show a NodeMigration as it runs: a progress bar over its nodes and over the images step, every "
    "node's phase, step, attempts and time in its step, its last error, and the conditions. Reads the "
    "cluster of --kubeconfig/--context (or $KUBECONFIG); changes nothing. Also a kubectl plugin: "
    "`kubectl shimshift status NAME`."
)


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the NodeMigration")
    p.add_argument(
        "-w", "--watch", action="store_true", help="print a new view on every change until it ends"
    )
    p.add_argument(
        "-n",
        "--namespace",
        help="read per-node NodeMigrationNode objects only in this namespace (default: all namespaces)",
    )
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="--watch: seconds between reads"
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _current_step(node: Mapping[str, Any]) -> Mapping[str, Any]:
    step = node.get("step")
    for record in node.get("steps") or ():
        if isinstance(record, Mapping) and record.get("id") == step:
            return record
    return {}


def _in_step(node: Mapping[str, Any], now: dt.datetime) -> str:
    """How long the node has been in its current step, while that step runs."""
    if node.get("stepState") != "Started" or node.get("phase") not in ("InProgress", "RollingBack"):
        return ""
    started = _time(_current_step(node).get("startedAt"))
    return duration((now - started).total_seconds()) if started else ""


def _images_cell(node: Mapping[str, Any]) -> str:
    images = node.get("images") or {}
    moved = _int(images.get("transferred")) + _int(images.get("pulled"))
    if not images:
        return ""
    sizes = _bytes_of(node)
    if sizes is None:
        return f"{moved} moved, {human_bytes(_int(images.get('bytes')))}"
    if _images_running(node):
        return f"{human_bytes(sizes[0])} of {human_bytes(sizes[1])}"
    return f"{moved} moved, {human_bytes(sizes[0])}"


def _bytes_of(node: Mapping[str, Any]) -> tuple[int, int] | None:
    """(bytes moved, bytes to move) of the node's images step, None when its record has no bytes."""
    images = node.get("images") or {}
    if "bytesToMove" not in images:
        return None
    return _int(images.get("bytesMoved")), _int(images.get("bytesToMove"))


def _images_running(node: Mapping[str, Any]) -> bool:
    return node.get("step") in ("images", "recheck") and node.get("stepState") == "Started"


def _older(node: Mapping[str, Any]) -> bool:
    """A record of an older shimshift: images moved, but no bytes to move recorded."""
    images = node.get("images") or {}
    return _bytes_of(node) is None and _int(images.get("transferred")) + _int(images.get("pulled")) > 0


def _bytes_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """A bar of bytes: full when there is nothing to move."""
    return bar(done, total, width) if total > 0 else bar(1, 1, width)


def percent(done: int, total: int) -> str:
    return f"{100 * done // total}%" if total > 0 else "100%"


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _images_done(node: Mapping[str, Any]) -> bool:
    return any(
        isinstance(s, Mapping) and s.get("id") == "images" and s.get("state") == "Done"
        for s in node.get("steps") or ()
    )


def _cordoned_line(nodes: Sequence[Mapping[str, Any]], now: dt.datetime) -> str:
    """The time out of service: of the nodes shimshift uncordoned (their `cordonedSeconds`), and of
    those in flight it holds cordoned now; "" when there are neither."""
    back = [(_int(n["cordonedSeconds"]), str(n.get("name", "?"))) for n in nodes if "cordonedSeconds" in n]
    held = [
        since
        for n in nodes
        if n.get("phase") in IN_FLIGHT_PHASES
        and not n.get("uncordonedAt")
        and (since := _time(n.get("cordonedAt"))) is not None
    ]
    parts = []
    if back:
        longest, name = max(back)
        mean = duration(sum(s for s, _ in back) / len(back))
        parts.append(
            f"{len(back)} node(s) uncordoned after {mean} on average, longest {duration(longest)} ({name})"
        )
    if held:
        parts.append(
            f"{len(held)} cordoned now, the longest for {duration((now - min(held)).total_seconds())}"
        )
    return "Cordoned " + "; ".join(parts) if parts else ""


def _images_lines(nodes: Sequence[Mapping[str, Any]], eligible: int, now: dt.datetime) -> list[str]:
    """The images bar (bytes moved of bytes to move; nodes done, for records without bytes) and a
    line with its own bar for each node whose images step runs now."""
    images_done = [n for n in nodes if _images_done(n)]
    moved = sum(_int((n.get("images") or {}).get(k)) for n in nodes for k in ("transferred", "pulled"))
    skipped = sum(_int((n.get("images") or {}).get("skipped")) for n in nodes)
    counts = f"{len(images_done)}/{eligible} nodes' images step done: {moved} images moved, {skipped} skipped"
    sized = [b for n in nodes if (b := _bytes_of(n)) is not None]
    if any(_older(n) for n in nodes):
        streamed = sum(_int((n.get("images") or {}).get("bytes")) for n in nodes)
        lines = [
            f"Images  {bar(len(images_done), eligible)} {counts}, {human_bytes(streamed)}"
            " (a bar of nodes: records of an older shimshift hold no bytes to move)"
        ]
    else:
        done_bytes, to_move = sum(b[0] for b in sized), sum(b[1] for b in sized)
        started = sum(1 for n in nodes if _images_done(n) or _images_running(n))
        if not started:
            moving = "no node's images step started yet"
        else:
            moving = f"{human_bytes(done_bytes)} of {human_bytes(to_move)} ({percent(done_bytes, to_move)})"
            if started < eligible:  # the others' bytes to move are recorded when their step starts
                moving += f" on the {started} node(s) whose images step started"
        shown = _bytes_bar(done_bytes, to_move) if started else bar(0, 0)
        lines = [f"Images  {shown} {moving}; {counts}"]
    for n in nodes:
        if not _images_running(n):
            continue
        since = _in_step(n, now)
        step = f"{n.get('step')} step running" + (f" for {since}" if since else "")
        sizes = _bytes_of(n)
        if sizes is None:
            lines.append(f"        {n.get('name', '?')}: {step} (no bytes recorded yet)")
            continue
        node_bar = _bytes_bar(sizes[0], sizes[1], NODE_BAR_WIDTH)
        lines.append(
            f"        {n.get('name', '?')}  {node_bar} {human_bytes(sizes[0])} of {human_bytes(sizes[1])}"
            f" ({percent(*sizes)}), {step}"
        )
    return lines


def render_status(
    migration: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], *, source: str, now: dt.datetime
) -> str:
    meta = migration.get("metadata") or {}
    spec = migration.get("spec") or {}
    status = migration.get("status") or {}
    name = meta.get("name", "?")
    lines = [
        f"NodeMigration {name}  mode {spec.get('mode', '?')}  phase {status.get('phase') or 'Pending'}"
        f"  generation {meta.get('generation', '?')} (observed {status.get('observedGeneration', '-')})"
    ]
    total = len(nodes)
    phases = Counter(str(n.get("phase") or "Pending") for n in nodes)
    held_count = sum(
        1
        for n in nodes
        if str(n.get("phase")) == str(NodePhase.SKIPPED)
        and str(n.get("skipReason", "")).startswith(keys.HOLD_REASON)
    )
    done = sum(phases[p] for p in DONE_PHASES) - held_count  # a held node is still on Docker: not done
    counts = ", ".join(f"{p} {phases[p]}" for p in (str(x) for x in NodePhase) if phases[p])
    counts += f", of which held {held_count}" if held_count else ""
    lines.append(f"Nodes   {bar(done, total)} {done}/{total} done" + (f"  ({counts})" if counts else ""))
    lines += _images_lines(nodes, total - phases[str(NodePhase.SKIPPED)], now)
    cordoned = _cordoned_line(nodes, now)
    if cordoned:
        lines.append(cordoned)
    held = [h for h in status.get("heldNodes") or () if isinstance(h, Mapping)]
    for h in held:
        lines.append(f"Held    {h.get('name', '?')}: {h.get('reason') or keys.HOLD_REASON}")
    if _int(status.get("heldNotListed")):
        lines.append(f"Held    ... and {_int(status.get('heldNotListed'))} more")
    for s in (s for s in status.get("apiServerNodes") or () if isinstance(s, Mapping)):
        lines.append(f"Skipped {s.get('name', '?')}: {s.get('reason') or keys.SOLE_API_SERVER_REASON}")
    lines.append("")
    if nodes:
        rows = [["NODE", "PHASE", "STEP", "STATE", "ATTEMPTS", "IN STEP", "IMAGES"]]
        notes: dict[int, list[str]] = {}
        for i, n in enumerate(nodes, 1):
            rows.append(
                [
                    str(n.get("name", "?")),
                    str(n.get("phase") or "Pending"),
                    str(n.get("step") or "-"),
                    str(n.get("stepState") or "-"),
                    str(_int(n.get("attempts"))),
                    _in_step(n, now) or "-",
                    _images_cell(n) or "-",
                ]
            )
            error = n.get("lastError") or {}
            if error:
                exit_code = f" (exit {error['exitCode']})" if error.get("exitCode") is not None else ""
                notes[i] = [f"    error in {error.get('step', '?')}: {error.get('message', '')}{exit_code}"]
            elif n.get("skipReason"):
                notes[i] = [f"    skipped: {n['skipReason']}"]
        for i, line in enumerate(_table(rows)):
            lines.append(line)
            lines += notes.get(i, [])
    else:
        lines.append("No node records yet (the operator writes them when it first plans the NodeMigration).")
    conditions = [c for c in status.get("conditions") or () if isinstance(c, Mapping)]
    if conditions:
        lines += ["", "Conditions:"]
        rows = [["TYPE", "STATUS", "REASON", "MESSAGE"]]
        rows += [[str(c.get(k, "")) for k in ("type", "status", "reason", "message")] for c in conditions]
        lines += _table(rows, indent="  ")
    lines += [
        "",
        f"Node records from {source}."
        + (f" Plan report: ConfigMap {status['reportConfigMap']}." if status.get("reportConfigMap") else ""),
    ]
    return "\n".join(lines) + "\n"


def run_status(args: argparse.Namespace, out: TextIO) -> int:
    # Imported here: the Kubernetes client is loaded only by the commands that talk to a cluster.
    from shimshift.kube.api import Kube, load_api_client
    from shimshift.kube.progress import read_progress

    try:
        kube = Kube(load_api_client(args.kubeconfig, args.context))
    except ShimshiftError as e:
        print(f"error: {e}", file=out)
        return EXIT_ERROR
    seen = ""
    try:
        while True:
            progress = read_progress(kube, args.name, args.namespace)
            if progress is None:
                gone = " (it was deleted)" if seen else ""
                print(f"error: NodeMigration {args.name!r} not found{gone}", file=out)
                return EXIT_ERROR
            state = json.dumps([progress.migration.get("status"), progress.nodes], sort_keys=True)
            if state != seen:
                if seen:
                    print("", file=out)
                now = dt.datetime.now(dt.UTC)
                if args.watch:
                    print(f"-- {now.strftime('%Y-%m-%d %H:%M:%S')}Z", file=out)
                out.write(render_status(progress.migration, progress.nodes, source=progress.source, now=now))
                out.flush()
                seen = state
            phase = (progress.migration.get("status") or {}).get("phase")
            if not args.watch or phase in FINISHED:
                return EXIT_OK
            time.sleep(max(0.1, args.interval))
    except ShimshiftError as e:
        print(f"error: cannot read NodeMigration {args.name!r}: {e}", file=out)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        kube.close()
