"""Pure planning: node selection, waves, the next step, drain plans, kubelet edits, the plan report.

A function of (spec, cluster snapshot, node facts, now): never imports kubernetes, paramiko, kopf or
asyncio (checked by import-linter).
"""
