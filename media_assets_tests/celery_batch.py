"""The batch job with the Celery executor (what README "Past one machine" switches to), reconstructable so that
Celery workers can load it; `python -m media_assets_tests.celery_batch BATCH_ID RUN_CONFIG` runs one batch with
it, its steps executed by whichever worker takes them. Settings, catalog and DAGSTER_HOME come from the
environment, as on a deployed machine."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    JobDefinition,
    define_asset_job,
    execute_job,
    reconstructable,
)
from dagster_celery import celery_executor

from media_assets.definitions import defs as production_defs
from media_assets.defs.batch.assets import GROUP, PHASE_ASSETS

CELERY_JOB_NAME = "media_batch_celery"


def celery_batch_job() -> JobDefinition:
    job = define_asset_job(CELERY_JOB_NAME, selection=AssetSelection.groups(GROUP), executor_def=celery_executor)
    defs = Definitions(assets=PHASE_ASSETS, jobs=[job], resources=production_defs.resources)
    return defs.resolve_job_def(CELERY_JOB_NAME)


def main(batch_id: str, run_config_path: str) -> int:
    with DagsterInstance.get() as instance:
        result = execute_job(reconstructable(celery_batch_job), instance=instance,
                             run_config=yaml.safe_load(Path(run_config_path).read_text()),
                             tags={"dagster/partition": batch_id}, raise_on_error=False)
        print(result.run_id)
        return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
