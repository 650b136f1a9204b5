"""Fault-injection suite: real processes, real Redis, faults injected while messages flow.

See tests/faults/run.py for what a run does and README.md "Faults and durability" for the command.
"""
