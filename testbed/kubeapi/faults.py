"""The request log and fault rules, which live in ``testbed.apirequests.faults`` (the emulator and the
fault-injecting proxy share them); re-exported here for the tests that import them from the emulator."""

from testbed.apirequests.faults import (
    WRITE_VERBS,
    FaultRule,
    Faults,
    RandomFaultRule,
    RequestLog,
    RequestRecord,
    Trigger,
)

__all__ = ["WRITE_VERBS", "FaultRule", "Faults", "RandomFaultRule", "RequestLog", "RequestRecord", "Trigger"]
