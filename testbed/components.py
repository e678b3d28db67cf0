"""Where the real components built from their Go modules live (`scripts/build-components`).

The cache is outside the work tree, keyed by name and version:
``${SHIMSHIFT_COMPONENTS:-/var/cache/shimshift/components}/<name>-<version>/bin/<binary>``; the
versions the testbed uses are the lines of ``scripts/components/versions``.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = ROOT / "scripts" / "components" / "versions"


class ComponentMissing(RuntimeError):
    """A component the testbed needs is not built; `scripts/build-components` builds it."""


def cache_root() -> Path:
    return Path(os.environ.get("SHIMSHIFT_COMPONENTS", "/var/cache/shimshift/components"))


def versions(name: str) -> list[str]:
    """The versions of `name` the testbed uses, in the versions file's order."""
    found: list[str] = []
    for line in VERSIONS_FILE.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == name:
            found.append(words[1])
    return found


def binary(name: str, program: str, version: str | None = None) -> Path:
    """The built `program` of component `name` (the first listed version unless one is named)."""
    listed = versions(name)
    if version is None:
        if not listed:
            raise ComponentMissing(f"{name} is not listed in {VERSIONS_FILE}")
        version = listed[0]
    directory = cache_root() / f"{name}-{version}"
    path = directory / "bin" / program
    if not (directory / ".complete").exists() or not path.is_file():
        raise ComponentMissing(
            f"{program} of {name} {version} is not built ({path}); run scripts/build-components {name}"
        )
    return path


def available(name: str, program: str, version: str | None = None) -> bool:
    try:
        binary(name, program, version)
    except ComponentMissing:
        return False
    return True
