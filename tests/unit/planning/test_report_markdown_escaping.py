"""Node and cluster text reach a terminal and a Markdown viewer as inert, visible text.

Before, the Markdown report (the `report.md` of the `<name>-plan` ConfigMap, which admins
read with `kubectl get -o jsonpath` in a terminal) passed ESC/OSC sequences and active Markdown links
from node facts through. Control characters now appear as visible escapes (`\\x1b`, `\\u202e`) and link,
image, autolink and HTML syntax from the data renders as literal text. Checked with a CommonMark parser
(markdown-it-py, tables on): whatever the data, the report has no link, image or HTML the benign
report lacks, and no control character but the newline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from shimshift.model.facts import DockerImage
from shimshift.planning.build import build_plan
from shimshift.planning.cluster import Cluster
from shimshift.planning.report import PlanReport
from shimshift.planning.report_html import render_html
from shimshift.planning.report_markdown import render_markdown
from shimshift.planning.snapshot import load_snapshot
from tests.unit.planning.factory import cluster, node, pod, spec

REPO = Path(__file__).resolve().parents[3]
SNAP = load_snapshot(REPO / "examples" / "snapshot")
FACTS = SNAP.facts["worker-03"]
NOW = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
FLAGS = "/var/lib/kubelet/kubeadm-flags.env"

HOSTILE = [
    "\x1b]8;;https://evil.example/\x07click me\x1b]8;;\x07",  # OSC 8 terminal hyperlink
    "\x1b[2J\x1b[31mred\x9b0m",  # clear screen, colour; C1 CSI
    "[click](https://evil.example/)",
    "![pixel](https://evil.example/p.png)",
    "<https://evil.example/>",
    "<img src=x onerror=alert(1)>",
    "x`[click](https://evil.example/)`y",
    "```\n[click](https://evil.example/)\n```",
    "[click][r]\n[r]: https://evil.example/",
    "]: https://evil.example/",
    "abc\u202egnp.exe",
    "a\\](https://evil.example/)",
]
CONTROLS = [
    "\x1b",
    "\x1b]8;;",
    "\x07",
    "\x9b",
    "\x85",
    "\x7f",
    "\r",
    "\n",
    "\t",
    "\u202e",
    "\u2066",
    "\u2028",
]
MARKUP = ["[", "]", "(", ")", "<", ">", "!", "`", "```", "\\", ":", "|", "*", "https://e.example/", "a b"]
pieces = st.sampled_from(CONTROLS + MARKUP)
data = st.one_of(
    st.lists(pieces, min_size=1, max_size=12).map("".join),
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=30),
)


def _toml_key(value: str) -> str:
    """`value` as a TOML quoted key (every control character escaped, as TOML requires)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def plan_for(value: str) -> PlanReport:
    """The plan of one node whose name, runtime, facts, files, pod and image carry `value`."""
    name = value
    kubelet = dataclasses.replace(
        FACTS.kubelet, files={**FACTS.kubelet.files, FLAGS: f"# {value}\n" + FACTS.kubelet.files[FLAGS]}
    )
    facts = dataclasses.replace(
        FACTS,
        node=name,
        docker_version=value,
        kubelet=kubelet,
        unreadable={value: value},
        images=(DockerImage("sha256:" + "a" * 64, (value,), (), 1 << 20, True),),
        containerd_config=f"{_toml_key(value)} = 1\n",
    )
    raw = node(name, runtime=f"docker://{value}", labels={"pool": "workers"})
    c: Cluster = cluster([raw], [pod(value, node_name=name, image=value)])
    return build_plan(spec(), c, {name: facts}, NOW, name=value, source=value, facts_taken_at=value)


def report_for(value: str) -> str:
    return render_markdown(plan_for(value))


PARSER = MarkdownIt("commonmark").enable("table")


def active(md: str) -> list[str]:
    """Every link, image, autolink and raw HTML a CommonMark viewer would make of `md`."""
    out: list[str] = []

    def walk(tokens: list[Any]) -> None:
        for t in tokens:
            if t.type == "link_open":
                out.append(f"link {t.attrs.get('href')}")
            elif t.type == "image":
                out.append(f"image {t.attrs.get('src')}")
            elif t.type in ("html_inline", "html_block"):
                out.append(f"html {t.content}")
            if t.children:
                walk(t.children)

    walk(PARSER.parse(md))
    return out


def controls(md: str) -> list[str]:
    bad = {chr(c) for c in range(32)} - {"\n"} | {chr(c) for c in range(0x7F, 0xA0)}
    bad |= {"\u061c", "\u200e", "\u200f", "\u2028", "\u2029"}
    bad |= {chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)}
    return sorted({repr(ch) for ch in md if ch in bad})


BENIGN = report_for("node-1")


def test_the_benign_report_has_no_link_and_no_control_character() -> None:
    assert active(BENIGN) == [] and controls(BENIGN) == []


@settings(max_examples=150, deadline=dt.timedelta(seconds=10))
@given(value=data)
@example(value=HOSTILE[0])
@example(value=HOSTILE[1])
@example(value=HOSTILE[2])
@example(value=HOSTILE[3])
@example(value=HOSTILE[4])
@example(value=HOSTILE[5])
@example(value=HOSTILE[6])
@example(value=HOSTILE[7])
@example(value=HOSTILE[8])
@example(value=HOSTILE[9])
@example(value=HOSTILE[10])
@example(value=HOSTILE[11])
def test_node_text_never_makes_a_control_character_or_an_active_link_in_the_markdown(value: str) -> None:
    md = report_for(value)
    assert controls(md) == []
    assert active(md) == []


def test_control_characters_are_shown_as_visible_escapes() -> None:
    md = report_for("ab\x1b[31mcd\u202eef")
    assert "ab\\x1b[31mcd\\u202eef" in md
    assert "\\x1b" in report_for("\x1b]8;;x\x07")


def test_the_html_report_shows_control_characters_as_visible_escapes_too() -> None:
    for value in HOSTILE[:2] + HOSTILE[10:11]:
        page = render_html(plan_for(value))
        assert controls(page.replace("\n", "")) == [], value
    assert "ab\\x1b[31mcd\\u202eef" in render_html(plan_for("ab\x1b[31mcd\u202eef"))
