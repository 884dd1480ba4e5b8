"""The catalog: every read and write of pipeline state goes through here, in short transactions.

`Catalog` is one connection with the queries of each concern: files and their states (`files.py`), batches and
phase runs (`batches.py`), uploads (`uploads.py`) and numbers (`stats.py`). No SQL lives outside `catalog/`."""

from __future__ import annotations

from media_assets.catalog.batches import Batch, BatchQueries, PhaseRun
from media_assets.catalog.files import (
    Duplicate,
    FileChanges,
    FileQueries,
    MediaFile,
    QuarantinedFile,
    path_inside_source,
    source_path,
)
from media_assets.catalog.stats import StatsQueries
from media_assets.catalog.uploads import Upload, UploadQueries

__all__ = ["Batch", "Catalog", "Duplicate", "FileChanges", "MediaFile", "PhaseRun", "QuarantinedFile", "Upload",
           "path_inside_source", "source_path"]


class Catalog(FileQueries, BatchQueries, UploadQueries, StatsQueries):
    """Access to the catalog database through one psycopg 3 connection."""
