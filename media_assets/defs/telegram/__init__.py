"""Telegram: reports of batches the daemon ran, alerts on failed runs and low free space."""

from dagster import Definitions

from media_assets.defs.telegram.sensors import TELEGRAM_SENSORS

defs = Definitions(sensors=TELEGRAM_SENSORS)
