"""The verify step's canary, decided: whether the canary pod passed, failed, or is still worth waiting
for, from what the API shows of it, its log and how long it has existed. Pure: the pod's I/O is the
cluster port's (`shimshift.kube.canary`), its image the images step's
(`shimshift.steps.images.canary`).

A canary passes only when it ran to completion (phase Succeeded) and its log holds the token this
verify attempt chose; it fails at once when kubelet says it cannot start the container (the image
cannot be pulled or is not on the node, the container cannot be created or run), when it exits
otherwise, or when it has not finished within `spec.verify.canary.timeout`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shimshift.model.canary import CanaryPod
from shimshift.model.durations import format_duration
from shimshift.rendering.redact import redact_text

#: Container waiting reasons kubelet gives for a container it will not get running by waiting: the
#: canary fails on them at once. ErrImagePull is not among them (kubelet retries a pull once, then says
#: ImagePullBackOff), nor ContainerCreating / PodInitializing (on the way).
STUCK = frozenset(
    {
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
        "ImageInspectError",
        "RegistryUnavailable",
        "PreCreateHookError",
        "PreStartHookError",
    }
)

#: Characters of the pod's log quoted when it lacks the token, and of a failure's whole reason.
LOG_QUOTE_MAX = 200
REASON_MAX = 600


class CanaryResult(StrEnum):
    """How a canary ended: the `result` label of its metrics."""

    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CanaryVerdict:
    #: None: still running, wait; else how it ended
    result: CanaryResult | None
    reason: str  # what the pod says of itself, one line


def settled(pod: CanaryPod) -> bool:
    """Whether waiting longer on `pod` changes nothing: it finished, kubelet gave up starting it, or it
    is being deleted."""
    return pod.phase in ("Succeeded", "Failed") or pod.waiting_reason in STUCK or pod.deleting


def _one_line(text: str, limit: int) -> str:
    text = " ".join(redact_text(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_canary(pod: CanaryPod) -> str:
    """The pod's state in kubelet's words: `phase Pending, container waiting: ImagePullBackOff (...)`."""
    parts = [f"phase {pod.phase}"]
    if pod.reason or pod.message:
        parts.append(": ".join(p for p in (pod.reason, pod.message) if p))
    if pod.waiting_reason:
        parts.append(
            f"container waiting: {pod.waiting_reason}"
            + (f" ({pod.waiting_message})" if pod.waiting_message else "")
        )
    if pod.exit_code is not None:
        why = ": ".join(p for p in (pod.terminated_reason, pod.terminated_message) if p)
        parts.append(f"container exited {pod.exit_code}" + (f" ({why})" if why else ""))
    return _one_line(", ".join(parts), REASON_MAX)


def judge(pod: CanaryPod, *, log: str | None, elapsed: float, timeout: float) -> CanaryVerdict:
    """The verdict on `pod`, `elapsed` seconds after it was created; `log` is its log once it
    Succeeded (None: the API server could not fetch it from the kubelet)."""
    if pod.phase == "Succeeded":
        if log is None:
            # `echo` exited 0 under containerd, which is what the canary is for; the log travels
            # API server -> kubelet, a path the migration does not touch: say so, do not roll back
            return CanaryVerdict(
                CanaryResult.PASSED,
                f"ran and exited 0 in {format_duration(elapsed)}; its log could not be read through the "
                "API server (its connection to the kubelet), so its token was not checked",
            )
        if pod.token and pod.token in log:
            return CanaryVerdict(
                CanaryResult.PASSED, f"ran and echoed its token in {format_duration(elapsed)}"
            )
        said = _one_line(log or "", LOG_QUOTE_MAX) or "(empty)"
        return CanaryVerdict(
            CanaryResult.FAILED, f"exited 0 but its log does not hold the token it echoes: {said}"
        )
    if pod.phase == "Failed" or pod.waiting_reason in STUCK:
        return CanaryVerdict(CanaryResult.FAILED, describe_canary(pod))
    if pod.deleting:
        return CanaryVerdict(
            CanaryResult.FAILED, "deleted by someone else before it finished: " + describe_canary(pod)
        )
    if elapsed >= timeout:
        limit = f"not finished within {format_duration(timeout)} (spec.verify.canary.timeout)"
        return CanaryVerdict(CanaryResult.TIMEOUT, f"{limit}: {describe_canary(pod)}")
    return CanaryVerdict(None, describe_canary(pod))
