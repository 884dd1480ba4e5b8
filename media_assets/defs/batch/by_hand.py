"""Jobs launched by hand from the UI (*Jobs* -> job -> *Launch run*): start a batch now, and re-run every failed
batch. Each runs the batch job inside its own run's process, exactly as `media-pipeline run` and `retry-failed`
do, so a failed batch continues from each file's recorded state and nothing finished is done again."""

from dagster import Failure, OpExecutionContext, in_process_executor, job, op

from media_assets.defs.instance import Pipeline
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.reporting import RunReport


def _pipeline(context: OpExecutionContext, settings: SettingsResource, catalog: CatalogResource) -> Pipeline:
    return Pipeline(settings=settings.load(), catalog=catalog.catalog, instance=context.instance)


def _fail_on_failures(reports: list[RunReport]) -> None:
    failed = [report for report in reports if not report.success]
    if failed:
        raise Failure(f"{len(failed)} of {len(reports)} batch(es) failed again: "
                      + "; ".join(f"{report.batch_id}: {report.error}" for report in failed))


@op(description="Creates a batch with a new id from what the sources hold and runs every phase on it.")
def start_batch(context: OpExecutionContext, settings: SettingsResource, catalog: CatalogResource) -> None:
    from media_assets.runner import run_next_batch

    decision, report = run_next_batch(_pipeline(context, settings, catalog))
    if report is None:
        context.log.info(f"no batch started: {decision.reason}")
        return
    context.log.info(f"batch {report.batch_id}: {'succeeded' if report.success else 'failed'}")
    _fail_on_failures([report])


@op(description="Re-runs every failed batch, oldest first, from where each stopped.")
def retry_each_failed_batch(context: OpExecutionContext, settings: SettingsResource,
                            catalog: CatalogResource) -> None:
    from media_assets.runner import retry_failed

    reports = retry_failed(_pipeline(context, settings, catalog))
    context.log.info(f"{sum(r.success for r in reports)} of {len(reports)} failed batch(es) now succeeded")
    _fail_on_failures(reports)


@job(executor_def=in_process_executor, description="Start a batch now, with an id of its own (the UI's way to "
     "start a batch; 'Add a partition' by hand is refused unless the name is a batch id).")
def new_batch() -> None:
    start_batch()


@job(executor_def=in_process_executor, description="Re-run every failed batch from where it stopped: the UI's "
     "way to recover several failed batches at once (one failed run: Re-execute -> From failure).")
def retry_failed_batches() -> None:
    retry_each_failed_batch()
