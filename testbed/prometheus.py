"""A real Prometheus (Debian's `prometheus` package) on loopback, for the health-gate tests.

It scrapes nothing; one rule file holds an alert whose expression fires or not (`set_firing`), and the
rules are reloaded through `/-/reload` (`--web.enable-lifecycle`), evaluated every second. Its TSDB lives
in the caller's directory; `stop()` ends the process it started (and only that one).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from testbed.ports import free_port
from testbed.waiting import wait_until

#: The alert the rule file holds: `ShimshiftGateTest`, severity critical, firing while `set_firing(True)`.
ALERT = "ShimshiftGateTest"
CONFIG = """global:
  evaluation_interval: 1s
rule_files: [rules.yml]
"""


def _rules(firing: bool) -> str:
    expr = "vector(1)" if firing else "vector(1) > 2"
    return (
        "groups:\n"
        "  - name: shimshift-gates-test\n"
        "    rules:\n"
        f"      - alert: {ALERT}\n"
        f"        expr: {expr}\n"
        "        labels: {severity: critical}\n"
        "      - alert: Watchdog\n"  # always firing, as kube-prometheus's; the gates' filters ignore it
        "        expr: vector(1)\n"
        "        labels: {severity: none}\n"
    )


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class Prometheus:
    def __init__(self, workdir: Path, *, firing: bool) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "prometheus.yml").write_text(CONFIG)
        (workdir / "rules.yml").write_text(_rules(firing))
        self.proc: subprocess.Popen[bytes] | None = None
        self.firing = firing

    def start(self) -> Prometheus:
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus is not installed (scripts/setup installs Debian's package)")
        with (self.workdir / "prometheus.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, 60, what="Prometheus ready", detail=self.log_tail)
        self._settle()
        return self

    def alert_firing(self) -> bool:
        """Whether Prometheus reports the test alert firing now (its ALERTS series)."""
        query = urllib.parse.urlencode({"query": f'ALERTS{{alertname="{ALERT}",alertstate="firing"}}'})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as answer:  # noqa: S310 - loopback
            return bool(json.loads(answer.read())["data"]["result"])

    def _settle(self) -> None:
        """Wait until the alert's state is the one asked for (rules are evaluated every second)."""
        wanted = self.firing
        wait_until(
            lambda: self.alert_firing() == wanted,
            30,
            what=f"the test alert {'firing' if wanted else 'resolved'}",
            interval=0.2,
            detail=self.log_tail,
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except OSError:
            return False

    def log_tail(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def set_firing(self, firing: bool) -> None:
        """Rewrite the rule, reload it, and wait until the alert's state follows (an evaluation or two)."""
        (self.workdir / "rules.yml").write_text(_rules(firing))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
        self.firing = firing
        self._settle()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
