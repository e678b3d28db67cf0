"""Every error class says whether trying again later can succeed; nothing is retried by default.

`engine.is_transient` reads the class's own declaration, so an error that can never heal (a private key
that does not load, a host key not in known_hosts, a bad input) fails its node at once instead of being
retried, and a new error class has to decide before it can be raised.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import shimshift
from shimshift.engine import is_transient
from shimshift.kube.api import ApiStatusError, ApiUnreachable, NotFound
from shimshift.kube.secrets import read_secret_key
from shimshift.model.errors import KubeError, RemoteError, ShimshiftError
from shimshift.remote.connection import ConnectionLost

#: The decision for every ShimshiftError class in the package (True: waiting can help, so retry).
#: A new class must be added here, with its decision, before this test passes.
DECIDED = {
    "ShimshiftError": False,
    "ValidationError": False,
    "PlaybookError": False,
    "NodeError": False,
    "TaskFailed": False,
    "NotDockershimNode": False,
    "RenderError": False,
    "RenderProblems": False,
    "RemoteError": False,
    "CommandError": True,
    "CommandTimeout": True,
    "BatchCommandTimeout": True,
    "ConnectionLost": True,
    "ConnectFailed": True,
    "AuthenticationFailed": True,
    "UploadError": True,
    "PrivateKeyError": False,
    "SudoPasswordRequired": False,
    "OutputTooLarge": False,
    "HookFailed": False,  # a hook Job failed or timed out: the node fails (pre) or rolls back (post)
    "HostKeyError": False,
    "HostKeyMismatch": False,
    "HostKeyRevoked": False,
    "HostKeySetupError": False,
    "KubeError": False,
    "ApiStatusError": False,  # per instance: by its status (409, 429, 5xx retry), below
    "NotFound": False,
    "Conflict": True,
    "TooManyRequests": True,
    "ApiUnreachable": True,
    "NodeLocked": True,
    "NotSynced": True,
    "ChildOfAnother": True,  # a deleted namesake's NodeMigrationNode not yet collected  # a watch cache not yet listed: the pass is tried again shortly
    "StepFailed": False,
    "CanaryFailed": False,  # the canary did not run: the node rolls back, not retried
    "Busy": True,
    "InternalError": True,
    "ReportUnreadable": True,  # a plan being written: reading again succeeds once it is stored
    "ObjectUnreadable": True,  # a gate's object: someone may create it or grant the rule
    "PrometheusError": True,  # a gate's Prometheus unreachable or not answering: read again later
}


def _every_error_class() -> list[type[ShimshiftError]]:
    for info in pkgutil.walk_packages(shimshift.__path__, "shimshift."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: list[type[ShimshiftError]] = []
    todo: list[type[ShimshiftError]] = [ShimshiftError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("shimshift") and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_declares_whether_it_is_transient_or_inherits_a_declaration() -> None:
    undeclared = []
    for cls in _every_error_class():
        owner = next((c for c in cls.__mro__ if "transient" in vars(c)), None)
        if owner is None or not issubclass(owner, ShimshiftError):
            undeclared.append(cls.__qualname__)
    assert undeclared == []


def test_the_base_of_the_family_says_not_transient() -> None:
    assert vars(ShimshiftError).get("transient") is False


def test_every_error_class_is_transient_exactly_as_decided() -> None:
    classes = {cls.__name__: cls for cls in _every_error_class()}
    assert sorted(classes) == sorted(DECIDED), "decide the transience of every new error class here"
    for name, cls in classes.items():
        assert vars(cls).get("transient", getattr(cls, "transient", None)) is DECIDED[name], name


@pytest.mark.parametrize(
    ("status", "transient"), [(404, False), (403, False), (409, True), (429, True), (503, True)]
)
def test_an_api_answer_is_transient_by_its_status(status: int, transient: bool) -> None:
    error = ApiStatusError(status, "Reason", "message", what="GET /", body={})
    assert is_transient(error) is transient


def test_is_transient_retries_only_what_says_so() -> None:
    assert not is_transient(KubeError("Secret ops/ssh has no key 'ssh-privatekey'"))
    assert not is_transient(RemoteError("something on the node"))
    assert not is_transient(ValueError("not one of ours"))
    assert is_transient(ConnectionLost("node w1: the SSH connection broke"))
    assert is_transient(ApiUnreachable("GET /: no answer"))


class _Secrets:
    def __init__(self, answer: dict[str, object] | None) -> None:
        self.answer = answer

    def request(self, method: str, path: str, **_: object) -> dict[str, object]:
        if self.answer is None:
            raise NotFound(404, "NotFound", "secrets not found", what=f"{method} {path}", body={})
        return self.answer


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (None, "Secret ops/ssh does not exist; create it with the key 'ssh-privatekey'"),
        ({"data": {"other": "eA=="}}, "Secret ops/ssh has no key 'ssh-privatekey' (it has: other)"),
        ({"data": {"ssh-privatekey": "%%%"}}, "key 'ssh-privatekey' is not base64-encoded UTF-8 text"),
    ],
)
def test_secret_content_that_cannot_be_read_is_not_retried(
    answer: dict[str, object] | None, says: str
) -> None:
    with pytest.raises(KubeError) as e:
        read_secret_key(_Secrets(answer), "ops", "ssh", "ssh-privatekey")  # type: ignore[arg-type]
    assert says in str(e.value)
    assert not is_transient(e.value)
