"""Running kubectl against the emulator: the project's static one if setup installed it, else the system's."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def find_kubectl() -> str | None:
    local = REPO / ".tools" / "bin" / "kubectl"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    if Path("/usr/bin/kubectl").is_file():
        return "/usr/bin/kubectl"
    return shutil.which("kubectl")


@dataclass(frozen=True)
class Kubectl:
    binary: str
    kubeconfig: Path
    cache_dir: Path

    def run(
        self, *args: str, timeout: float = 60.0, input: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache_dir}", *args]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.cache_dir)}
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, input=input, check=check, env=env
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache_dir}", *args]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.cache_dir)}
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
