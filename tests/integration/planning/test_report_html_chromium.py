"""The HTML plan report in a real browser: headless Chromium (Debian package) loads the page, and the
test asserts what a person sees: one row per node, a red blocker badge, diffs that expand on demand.

The page itself has no scripts; the test loads a copy with a small probe script appended that measures
the laid-out page (bounding boxes, computed colours, <details> before and after opening) and writes the
result into the DOM, which `--dump-dom` returns. A screenshot of the untouched page is saved under
artifacts/ for a human to look at.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shimshift.entry.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """
<script>
(function () {
  function box(el) { var r = el.getBoundingClientRect(); return {w: r.width, h: r.height}; }
  // checkVisibility() is false inside a closed <details> (its content is content-visibility: hidden).
  function shown(el) { var b = box(el); return el.checkVisibility({visibilityProperty: true, opacityProperty: true})
                                            && b.w > 0 && b.h > 0; }
  var rows = Array.prototype.map.call(document.querySelectorAll('#fleet tr.node-row'), function (tr) {
    return {node: tr.dataset.node, status: tr.dataset.status, shown: shown(tr)};
  });
  var badge = document.querySelector('#fleet tr.node-row[data-status=Blocked] .badge-blocked');
  var verdict = document.getElementById('verdict');
  var diff = document.querySelector('details.group[open] details.diff');  // a blocked group opens by itself
  var pre = diff.querySelector('pre');
  var closed = {summary: shown(diff.querySelector('summary')), body: shown(pre)};
  diff.open = true;
  var opened = {body: shown(pre), lines: pre.querySelectorAll('span.add').length,
                addColour: getComputedStyle(pre.querySelector('span.add')).backgroundColor};
  var out = {rows: rows, verdict: verdict.textContent.trim(), verdictShown: shown(verdict),
             badge: badge && {text: badge.textContent.trim(), shown: shown(badge),
                              colour: getComputedStyle(badge).color, background: getComputedStyle(badge).backgroundColor},
             closed: closed, opened: opened};
  var pre2 = document.createElement('pre'); pre2.id = 'probe'; pre2.textContent = JSON.stringify(out);
  document.body.appendChild(pre2);
})();
</script>
"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,2200",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/setup installs the Debian package as root)")
    target = tmp_path_factory.mktemp("report") / "plan.html"
    status = main(
        [
            "plan",
            "--snapshot",
            str(REPO / "examples" / "snapshot"),
            "-f",
            str(REPO / "examples" / "fleet-plan.yaml"),
            "--format",
            "html",
            "-o",
            str(target),
            "--now",
            "2026-01-15T10:00:00Z",
        ],
        io.StringIO(),
    )
    assert status == 3
    return target


def test_the_page_shows_every_node_a_red_blocker_badge_and_diffs_that_expand(
    page: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    result = chromium("--dump-dom", probe.as_uri(), profile=tmp_path / "profile")
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not run: {result.stderr[-2000:]}"
    seen: dict[str, Any] = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    rows = seen["rows"]
    assert [r["node"] for r in rows] == [f"worker-0{i}" for i in range(1, 9)] + ["cp-1", "cp-2", "cp-3"]
    assert all(r["shown"] for r in rows)
    assert {r["node"] for r in rows if r["status"] == "Blocked"} == {
        "worker-03",
        "worker-04",
        "worker-05",
        "worker-08",
    }
    assert seen["verdict"] == "Blocked" and seen["verdictShown"]
    badge = seen["badge"]
    assert badge["text"] == "Blocked" and badge["shown"]
    red, green, blue = (int(v) for v in re.findall(r"\d+", badge["colour"])[:3])
    assert red > 150 and green < 80 and blue < 80, badge  # a red badge, not just a class name
    assert seen["closed"] == {"summary": True, "body": False}  # collapsed until asked
    assert seen["opened"]["body"] and seen["opened"]["lines"] > 0
    assert seen["opened"]["addColour"] != "rgba(0, 0, 0, 0)"  # added lines are highlighted


def test_a_screenshot_of_the_page_is_saved_as_an_artifact(page: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "plan-report.png"
    shot.unlink(missing_ok=True)
    result = chromium(f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "profile")
    assert shot.exists(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2200)
    assert len(data) > 50_000  # a rendered page, not a blank one
