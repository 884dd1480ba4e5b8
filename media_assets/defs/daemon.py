"""`media-pipeline-daemon`: `dagster-daemon` (same arguments) whose sensor ticks reach the log only when a sensor
acts or skips for a reason it did not give last time.

Dagster's daemon writes two INFO lines for every tick of every sensor ("Checking for new runs for sensor: X",
"Sensor X skipped: <reason>") and seven for every tick of the automation sensor: with eight sensors ticking every
30-60 s, about 2,000 lines an hour that all say nothing changed. The filter drops those and keeps everything else
(runs launched, partitions added, warnings, errors)."""

from __future__ import annotations

import logging
import re

from dagster._daemon.cli import main as dagster_daemon_main

#: The daemon's loggers whose tick lines are filtered.
SENSOR_LOGGER = "dagster.daemon.SensorDaemon"
AUTOMATION_LOGGER = "dagster.daemon.AssetDaemon"

_SKIPPED = re.compile(r"Sensor (?P<sensor>\S+) skipped: (?P<reason>.*)", re.DOTALL)
_NO_REQUESTS = re.compile(r"No run requests returned for (?P<sensor>\S+), skipping")
_EVERY_SENSOR_TICK = ("Checking for new runs for sensor: ",)
#: What the automation sensor logs on each tick; "Tick produced 1 run" and "Submitting 1 run" are kept.
_EVERY_AUTOMATION_TICK = re.compile(r"Checking \d+ assets/checks|Prefetching asset records|Done prefetching asset"
                                    r"|Adding \d+ asset evaluations|Finished auto-materialization tick"
                                    r"|Tick produced 0 runs|Submitting 0 runs")


class QuietSensorTicks(logging.Filter):
    """Passes a sensor's skip line only when its reason differs from the one it logged last, and drops the lines
    every tick writes whatever happens; any other record passes."""

    def __init__(self) -> None:
        super().__init__()
        self._last_reason: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        if record.name == AUTOMATION_LOGGER:
            return not _EVERY_AUTOMATION_TICK.match(message)
        if message.startswith(_EVERY_SENSOR_TICK):
            return False
        skipped = _SKIPPED.match(message) or _NO_REQUESTS.match(message)
        if skipped is None:
            return True
        sensor, reason = skipped["sensor"], skipped.groupdict().get("reason") or ""
        if self._last_reason.get(sensor) == reason:
            return False
        self._last_reason[sensor] = reason
        return True


def quiet_sensor_ticks() -> QuietSensorTicks:
    """Install one filter on the daemon's sensor and automation loggers (Dagster's logging set-up keeps filters of
    loggers it does not name)."""
    quiet = QuietSensorTicks()
    for name in (SENSOR_LOGGER, AUTOMATION_LOGGER):
        logging.getLogger(name).addFilter(quiet)
    return quiet


def main() -> None:
    quiet_sensor_ticks()
    dagster_daemon_main()


if __name__ == "__main__":
    main()
