"""Text for humans: the report, every rendered file (secret files as a hash) and the diff.

This is what `shimshift render` prints and what the golden files hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from shimshift.rendering.values import RenderedConfig


def listing(rendered: RenderedConfig, current: Mapping[str, str | None], title: str = "") -> str:
    out: list[str] = []
    if title:
        out.append(f"# {title}")
    out.append("## report")
    out += rendered.report.lines()
    out.append("## files")
    for f in rendered.files:
        secret = ", secret" if f.secret else ""
        out.append(f"### {f.path} (mode {f.mode:04o}{secret}, sha256 {f.sha256[:16]})")
        out.append(f.display_text().rstrip("\n"))
    out.append("## diff against the node's current files")
    out.append(rendered.diff(current).rstrip("\n") or "(no changes)")
    return "\n".join(out) + "\n"
