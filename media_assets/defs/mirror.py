"""The Supabase mirror in Dagster: a resource that opens the remote, one non-partitioned asset whose
materialisation is one sync cycle, and a sensor that asks only the local catalog whether anything changed.

An asset rather than an op job: the mirror is a real data product (the cloud copy), and each materialisation's
numbers (rows sent, requests, lag) are plotted over time on the asset's page without extra wiring."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    DagsterRunStatus,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    in_process_executor,
    sensor,
)

from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.mirror import MirrorConfig, SupabaseRemote, has_pending_changes, run_cycle
from media_assets.mirror.config import configured_interval_seconds
from media_assets.telegram.notify import send_alert

MIRROR_JOB_NAME = "supabase_mirror_job"
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


@asset(name="supabase_mirror", group_name="mirror", kinds={"supabase"},
       description="The catalog's metadata copied to Supabase: every change queued in the outbox since the last "
                   "sync, as upserts and deletes in chunks.")
def supabase_mirror(context: AssetExecutionContext, catalog: CatalogResource,
                    supabase: SupabaseResource) -> MaterializeResult:
    settings = supabase.settings.load()
    config = MirrorConfig.from_settings(settings)
    if not config.enabled:
        raise Failure("The Supabase mirror is off: set ENABLE_SUPABASE_MIRROR=true with SUPABASE_URL and "
                      "SUPABASE_KEY to turn it on.")
    with supabase.remote(config) as remote:
        # After ALERT_AFTER_FAILURES failed cycles in a row the owner hears about it on Telegram (if configured).
        report = run_cycle(catalog.catalog, remote, config.chunk_size, alert=partial(send_alert, settings=settings))
    context.log.info(f"Supabase mirror: {report.rows_sent} rows in {report.requests} requests, "
                     f"{report.seconds:.1f} s")
    return MaterializeResult(metadata=report.metadata())


supabase_mirror_job = define_asset_job(
    MIRROR_JOB_NAME, selection=[supabase_mirror], executor_def=in_process_executor,
    description="One Supabase sync cycle: send what changed in the catalog since the last one.")


@sensor(job=supabase_mirror_job, minimum_interval_seconds=configured_interval_seconds(),
        default_status=DefaultSensorStatus.RUNNING)
def supabase_mirror_sensor(context: SensorEvaluationContext, settings: SettingsResource,
                           catalog: CatalogResource) -> RunRequest | SkipReason:
    """Every interval: one EXISTS on the local outbox, no Supabase request; a run only when rows changed."""
    if not MirrorConfig.from_settings(settings.load()).enabled:
        return SkipReason("ENABLE_SUPABASE_MIRROR is false.")
    if not has_pending_changes(catalog.catalog):
        return SkipReason("Nothing changed in the catalog since the last sync.")
    if context.instance.get_run_records(RunsFilter(job_name=MIRROR_JOB_NAME, statuses=UNFINISHED), limit=1):
        return SkipReason("A sync is still running; its successor will pick up what is left.")
    return RunRequest()


MIRROR_ASSETS = [supabase_mirror]
MIRROR_JOBS = [supabase_mirror_job]
MIRROR_SENSORS = [supabase_mirror_sensor]
