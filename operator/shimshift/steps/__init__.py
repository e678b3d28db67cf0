"""The node steps, one home each: `facts`, `lock`, `cordon`, `drain`, `backup`, `configure`, `images`,
`switch`, `verify`, `finish`, `rollback`. A step's module holds its pure plan (what it will do, from
values), its engine half (`run`, over the ports in `steps.base`), its node half and undo (over a
`CommandRunner`, `steps.runner`) and the names of its node scripts (under the top-level playbooks/).

The steps are independent of one another (an import-linter contract); what they share sits below
them: `base`, `runner`, `execute` (running a playbook), `nodeplan`, `filesection`, `kubeletfiles`,
`machine` (which step comes next). `table` maps every StepId to its step. Pure: nothing here imports
kubernetes, paramiko, kopf, asyncio, subprocess, socket or gc.
"""
