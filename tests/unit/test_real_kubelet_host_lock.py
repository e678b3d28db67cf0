"""The real-kubelet host lock has two slots: two stacks at a time on one machine, a third waits, and a
slot given back is taken again. (Module-level state only: the lock files live under a temporary path.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from testbed.nodes import realkubelet
from testbed.waiting import WaitTimeout


def test_two_holders_at_a_time_and_a_third_waits_until_one_lets_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realkubelet, "HOST_LOCK", tmp_path / "real-kubelets.lock")
    first = realkubelet.take_host_lock(0)
    second = realkubelet.take_host_lock(0)
    try:
        with pytest.raises(WaitTimeout, match="2 slots"):
            realkubelet.take_host_lock(0.2, "a third run")
        first.close()
        third = realkubelet.take_host_lock(0)
        third.close()
    finally:
        first.close()
        second.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real-kubelets.lock", "real-kubelets.lock.1"]
