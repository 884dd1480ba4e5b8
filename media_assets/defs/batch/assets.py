"""The eight phases as software-defined assets partitioned by batch. Each is thin: it builds the phase's
context from the resources, runs the plain phase function, and hands its numbers to Dagster as metadata."""


import contextlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import psycopg
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from media_assets.batches import BatchLifecycle, is_batch_id
from media_assets.catalog.file_history import batch_files
from media_assets.catalog.phase_totals import phase_totals
from media_assets.catalog.repository import Catalog, path_inside_source
from media_assets.defs.batch.partitions import batch_partitions
from media_assets.defs.icloud import ICloudResource
from media_assets.defs.resources import CatalogResource, DestinationsResource, SettingsResource
from media_assets.defs.runs import claim_run
from media_assets.destinations.base import Destination
from media_assets.phases.common import PhaseContext, PhaseFunction, PhaseOutcome, run_phase
from media_assets.phases.compression import compress, keep_originals
from media_assets.phases.deduplication import deduplicate, pass_all_as_unique
from media_assets.phases.download import download as download_files
from media_assets.phases.file_preparation import prepare_files
from media_assets.phases.sorting import leave_in_bridge, sort_files
from media_assets.phases.upload import finish_uploads
from media_assets.phases.upload import upload as upload_files
from media_assets.phases.verification import finish_batch, verify
from media_assets.settings import Settings
from media_assets.sources.configured import local_sources

GROUP = "media"


def _run(context: AssetExecutionContext, settings: SettingsResource, catalog: CatalogResource, name: str,
         work: PhaseFunction, *, enabled: bool = True, when_disabled: PhaseFunction | None = None,
         first: bool = False, then: Callable[[PhaseContext], None] | None = None) -> MaterializeResult:
    """Run one phase of the batch; the `first` phase starts the batch, `then` runs once the phase succeeded (the
    last one finishes the batch), and any failure marks the batch failed with the reason."""
    ctx = PhaseContext(batch_id=context.partition_key, settings=settings.load(), catalog=catalog.catalog,
                       log=context.log, dagster_run_id=context.run.run_id)
    _claim(context, ctx.settings, ctx.catalog)
    try:
        if first:
            BatchLifecycle(ctx.catalog).start(ctx.batch_id)
        outcome = run_phase(name, ctx, work, enabled=enabled, when_disabled=when_disabled)
        if then is not None:
            then(ctx)
    except Exception as error:
        with contextlib.suppress(psycopg.Error):  # the failure may be the database itself
            ctx.catalog.ensure_connected()
            BatchLifecycle(ctx.catalog).failed(ctx.batch_id, f"{name}: {error}")
        raise
    return MaterializeResult(metadata=batch_totals(ctx.catalog, ctx.batch_id, outcome).metadata())


def batch_totals(catalog: Catalog, batch_id: str, outcome: PhaseOutcome) -> PhaseOutcome:
    """The phase's numbers for the whole batch, earlier runs' work included: a retry that finds little left to
    do must not plot the batch as zero files."""
    totals = phase_totals(catalog, batch_id, outcome.phase)
    return PhaseOutcome(phase=outcome.phase, status=outcome.status, files=totals.files, failed=totals.failed,
                        bytes_in=totals.bytes_in, bytes_out=totals.bytes_out, counts=totals.counts,
                        seconds=totals.seconds, note=outcome.note, measures=outcome.measures)


def _claim(context: AssetExecutionContext, settings: Settings, catalog: Catalog) -> None:
    claim_run(context.instance, context.run, settings, catalog, context.partition_key, context.log)


def _asset(name: str, previous: str | None, description: str,
           pool: str | None = None) -> Callable[[Callable[..., MaterializeResult]], AssetsDefinition]:
    return asset(name=name, partitions_def=batch_partitions, deps=[previous] if previous else None,
                 group_name=GROUP, kinds={"python"}, description=description, pool=pool)


def refuse_unknown_key(catalog: Catalog, key: str) -> None:
    """A partition added by hand in the UI under any name would otherwise become a batch."""
    if catalog.batch(key) is None and not is_batch_id(key):
        raise Failure(f"'{key}' is not a batch id (YYYYMMDD-HHMMSS): start a batch with the new_batch job "
                      "(Jobs -> new_batch -> Launch run), or add a partition named like one; nothing was done")


#: Steps that talk to Apple: the instance lets one run at a time into this pool (dagster.yaml).
ICLOUD_POOL = "icloud"


@_asset("download", None, "New files from the sources, copied into originals/<batch>/ and identified.",
        pool=ICLOUD_POOL)
def download(context: AssetExecutionContext, settings: SettingsResource, catalog: CatalogResource,
             icloud: ICloudResource) -> MaterializeResult:
    sources = local_sources(settings.load())
    if (remote := icloud.source()) is not None:
        sources[remote.name] = remote
    refuse_unknown_key(catalog.catalog, context.partition_key)
    return _run(context, settings, catalog, "download", partial(download_files, sources=sources), first=True)


@_asset("deduplication", "download", "Exact and near duplicates against the whole catalog, recorded, not deleted.")
def deduplication(context: AssetExecutionContext, settings: SettingsResource,
                  catalog: CatalogResource) -> MaterializeResult:
    return _run(context, settings, catalog, "deduplication", deduplicate,
                enabled=settings.load().dedup.enabled, when_disabled=pass_all_as_unique)


@_asset("compression", "deduplication", "Smaller encodings where they pay; originals are never touched.")
def compression(context: AssetExecutionContext, settings: SettingsResource,
                catalog: CatalogResource) -> MaterializeResult:
    return _run(context, settings, catalog, "compression", compress,
                enabled=settings.load().compression.enabled, when_disabled=keep_originals)


@_asset("file_preparation", "compression", "Files to upload, staged in bridge/<batch>/ with collision-free names.")
def file_preparation(context: AssetExecutionContext, settings: SettingsResource,
                     catalog: CatalogResource) -> MaterializeResult:
    return _run(context, settings, catalog, "file_preparation", prepare_files)


def _upload_phase(context: AssetExecutionContext, settings: SettingsResource, catalog: CatalogResource,
                  destinations: DestinationsResource, name: str, enabled: bool,
                  destination: Destination | None) -> MaterializeResult:
    required = list(destinations.enabled())
    finish = partial(finish_uploads, required_destinations=required)
    if destination is None:  # the Pixel without a sync folder: nothing to send, files flow on
        return _run(context, settings, catalog, name, finish, enabled=False, when_disabled=finish)
    work = partial(upload_files, destination=destination, required_destinations=required)
    return _run(context, settings, catalog, name, work, enabled=enabled, when_disabled=finish)


@_asset("icloud_upload", "file_preparation",
        "Upload to iCloud Photos (or, with no account configured, to LOCAL_DESTINATION_DIR).", pool=ICLOUD_POOL)
def icloud_upload(context: AssetExecutionContext, settings: SettingsResource, catalog: CatalogResource,
                  destinations: DestinationsResource) -> MaterializeResult:
    return _upload_phase(context, settings, catalog, destinations, "icloud_upload",
                         settings.load().destinations.enable_icloud_upload, destinations.primary())


@_asset("pixel_upload", "icloud_upload", "Copy into the Pixel phone's sync folder (Google Photos backs it up).")
def pixel_upload(context: AssetExecutionContext, settings: SettingsResource, catalog: CatalogResource,
                 destinations: DestinationsResource) -> MaterializeResult:
    return _upload_phase(context, settings, catalog, destinations, "pixel_upload",
                         settings.load().destinations.enable_pixel_upload, destinations.pixel())


@_asset("sorting", "pixel_upload", "Kept copies moved into uploaded/YYYY/MM/DD/ by local capture date.")
def sorting(context: AssetExecutionContext, settings: SettingsResource,
            catalog: CatalogResource) -> MaterializeResult:
    return _run(context, settings, catalog, "sorting", sort_files, enabled=settings.load().destinations.enable_sorting,
                when_disabled=leave_in_bridge)


@_asset("verification", "sorting", "Every file of the batch verified, a recorded duplicate, or quarantined.")
def verification(context: AssetExecutionContext, settings: SettingsResource, catalog: CatalogResource,
                 destinations: DestinationsResource) -> MaterializeResult:
    loaded = settings.load()
    result = _run(context, settings, catalog, "verification",
                  partial(verify, destinations=destinations.enabled(), sources=local_sources(loaded)),
                  enabled=loaded.destinations.enable_verification, then=finish_batch)
    return MaterializeResult(metadata={**(result.metadata or {}),
                                       "files_table": files_table(catalog.catalog, context.partition_key,
                                                                  loaded.sources.folder_source_paths)})


#: Rows of the per-file table on `verification` (the whole history of any file: `media-pipeline find`).
FILES_TABLE_ROWS = 1000
_FILES_SCHEMA = TableSchema(columns=[TableColumn(name) for name in (
    "source_path", "state", "taken", "date_tag", "compression", "bytes_saved", "duplicate_of", "quarantine_reason",
    "destinations")])


def files_table(catalog: Catalog, batch_id: str, source_folders: Sequence[Path]) -> MetadataValue:
    """What happened to each file of the batch, so 'what became of IMG_1234.jpg?' is answered on its page; files
    by their path inside the source folder."""
    records = []
    for file in batch_files(catalog, batch_id, FILES_TABLE_ROWS):
        keeper = (f"{path_inside_source(file.keeper_path or '', source_folders)} ({file.duplicate_kind})"
                  if file.duplicate_kind else None)
        records.append(TableRecord({
            "source_path": path_inside_source(file.source_path, source_folders), "state": file.state,
            "taken": file.captured_at.isoformat(sep=" ") if file.captured_at else None,
            "date_tag": file.capture_date_tag, "compression": file.compression_decision,
            "bytes_saved": file.bytes_saved, "duplicate_of": keeper,
            "quarantine_reason": file.error if file.state == "quarantined" else None,
            "destinations": file.destinations}))
    return MetadataValue.table(records=records, schema=_FILES_SCHEMA)


PHASE_ASSETS = [download, deduplication, compression, file_preparation, icloud_upload, pixel_upload, sorting,
                verification]
PHASES = [a.key.to_user_string() for a in PHASE_ASSETS]
