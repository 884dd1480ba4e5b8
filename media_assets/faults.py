"""Fault injection for the reliability tests, inert unless MEDIA_PIPELINE_FAULTS is set.

A rule is `ACTION@POINT:NAME:N` and fires the N-th time the code passes checkpoint POINT for NAME in this
process: `kill@move:compressed:2` kills the process (SIGKILL) inside the transaction of the 2nd move of a file
into `compressed` (after the phase's file work, before the catalog records it); `enospc@write:*:3` makes the 3rd
atomic write fail half-way with "No space left on device"; `stop@move:sorted:2` stops the process (SIGSTOP) there
until the test, having done something to the world (stopped the database), sends it SIGCONT. NAME `*` matches
any name."""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

FAULTS_ENV = "MEDIA_PIPELINE_FAULTS"
#: When set, a rule fires only while this file exists, and removes it as it fires: a fault that hits one run of
#: a long-lived daemon, not its re-runs.
ARMED_ENV = "MEDIA_PIPELINE_FAULTS_ARMED"
_passes: Counter[tuple[str, str]] = Counter()


def _rules() -> list[tuple[str, str, str, int]]:
    rules = []
    for rule in filter(None, os.environ.get(FAULTS_ENV, "").split(",")):
        action, _, where = rule.strip().partition("@")
        point, name, count = where.split(":")
        rules.append((action, point, name, int(count)))
    return rules


def checkpoint(point: str, name: str) -> None:
    """Called at the places a crash or a full disk hurts most; does nothing in normal runs."""
    if FAULTS_ENV not in os.environ:
        return
    for action, rule_point, rule_name, count in _rules():
        if rule_point != point or rule_name not in ("*", name):
            continue
        _passes[(point, rule_name)] += 1
        if _passes[(point, rule_name)] != count or not _disarm():
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
            continue
        if action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise ValueError(f"unknown fault action {action!r} in {FAULTS_ENV}")


def _disarm() -> bool:
    """True when the fault may fire now (no arming file configured, or it existed and is now removed)."""
    armed = os.environ.get(ARMED_ENV)
    if not armed:
        return True
    try:
        os.unlink(armed)
    except FileNotFoundError:
        return False
    return True
