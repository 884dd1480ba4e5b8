"""The Supabase mirror in Dagster: a resource that opens the remote, one non-partitioned asset whose
materialisation is one mirror pass, and a sensor that asks only the local catalog whether anything changed or
the daily full pass (the reconciliation with the remote) is due.

An asset rather than an op job: the mirror is a real data product (the cloud copy), and each materialisation's
numbers (rows sent, requests, lag) are plotted over time on the asset's page without extra wiring."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial

from dagster import (
    AssetExecutionContext,
    Config,
    ConfigurableResource,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    RunConfig,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from media_assets.catalog.mirror import full_pass_due
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.mirror import MirrorConfig, SupabaseRemote, has_pending_changes, run_cycle
from media_assets.telegram.notify import send_alert

MIRROR_JOB_NAME = "supabase_mirror_job"
#: How often the sensor asks for a full pass (every table compared with the remote, differences repaired).
FULL_PASS_EVERY = timedelta(days=1)
UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED]

class SupabaseResource(ConfigurableResource):
    """The Supabase project named by SUPABASE_URL / SUPABASE_KEY; the only door to it."""

    settings: SettingsResource

    @contextmanager
    def remote(self, config: MirrorConfig) -> Iterator[SupabaseRemote]:
        """A client for one cycle; creating it makes no request."""
        remote = SupabaseRemote.from_config(config)
        try:
            yield remote
        finally:
            remote.close()


class MirrorPassConfig(Config):
    #: Also compare every table with the remote and repair what differs (the daily pass).
    full: bool = False


@asset(name="supabase_mirror", group_name="mirror", kinds={"supabase"},
       description="The catalog's metadata copied to Supabase: every change queued in the outbox since the last "
                   "pass, as upserts and deletes in chunks; once a day every table compared and repaired.")
def supabase_mirror(context: AssetExecutionContext, config: MirrorPassConfig, catalog: CatalogResource,
                    supabase: SupabaseResource) -> MaterializeResult:
    settings = supabase.settings.load()
    mirror = MirrorConfig.from_settings(settings)
    if not mirror.enabled:
        raise Failure("The Supabase mirror is off: set ENABLE_SUPABASE_MIRROR=true with SUPABASE_URL and "
                      "SUPABASE_KEY to turn it on.")
    with supabase.remote(mirror) as remote:
        # After ALERT_AFTER_FAILURES failed passes in a row the owner hears about it on Telegram (if configured).
        report = run_cycle(catalog.catalog, remote, mirror.chunk_size, alert=partial(send_alert, settings=settings),
                           full=config.full)
    context.log.info(report.summary())
    return MaterializeResult(metadata=report.metadata())


supabase_mirror_job = define_asset_job(
    MIRROR_JOB_NAME, selection=[supabase_mirror], executor_def=in_process_executor,
    description="One Supabase mirror pass: send what changed in the catalog since the last one (and with "
                "`full`, compare every table with Supabase and repair what differs).")


#: How often Dagster ticks the sensor; SUPABASE_SYNC_INTERVAL_SECONDS (at least this) is kept with its cursor,
#: since Dagster fixes `minimum_interval_seconds` when the code loads, before the settings are read.
SENSOR_TICK_SECONDS = 30


@sensor(job=supabase_mirror_job, minimum_interval_seconds=SENSOR_TICK_SECONDS,
        default_status=DefaultSensorStatus.RUNNING)
def supabase_mirror_sensor(context: SensorEvaluationContext, settings: SettingsResource,
                           catalog: CatalogResource) -> RunRequest | SkipReason:
    """Every SUPABASE_SYNC_INTERVAL_SECONDS: two questions to the local catalog, no Supabase request; a run
    only when rows changed or the daily full pass is due."""
    config = MirrorConfig.from_settings(settings.load())
    if not config.enabled:
        return SkipReason("ENABLE_SUPABASE_MIRROR is false.")
    now = time.time()
    if context.cursor and now - float(context.cursor) < config.interval_seconds:
        return SkipReason(f"Next look within SUPABASE_SYNC_INTERVAL_SECONDS={config.interval_seconds}.")
    context.update_cursor(str(now))
    full = full_pass_due(catalog.catalog, FULL_PASS_EVERY)
    if not full and not has_pending_changes(catalog.catalog):
        return SkipReason("Nothing changed in the catalog since the last pass.")
    if context.instance.get_run_records(RunsFilter(job_name=MIRROR_JOB_NAME, statuses=UNFINISHED), limit=1):
        return SkipReason("A pass is still running; its successor will pick up what is left.")
    return RunRequest(run_config=RunConfig({"supabase_mirror": MirrorPassConfig(full=full)}),
                      tags={"mirror/full": str(full).lower()})


MIRROR_ASSETS = [supabase_mirror]
MIRROR_JOBS = [supabase_mirror_job]
MIRROR_SENSORS = [supabase_mirror_sensor]
