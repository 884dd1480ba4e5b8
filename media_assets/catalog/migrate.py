"""Apply the catalog's versioned migrations (Alembic) at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(conninfo: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["conninfo"] = conninfo
    return config


def upgrade_to_head(conninfo: str) -> None:
    """Bring the catalog schema to the newest revision; a no-op when it is already there."""
    command.upgrade(alembic_config(conninfo), "head")
