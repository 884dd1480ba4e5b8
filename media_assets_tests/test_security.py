"""Secrets never leave the settings: a batch run with known secret values, then every output searched."""

from __future__ import annotations

import logging

import pytest

from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline

SECRETS = {
    "ICLOUD_PASSWORD": "icloud-pw-7Hq2-never-print",
    "POSTGRES_PASSWORD": "pg-pw-Zr81-never-print",
    "TELEGRAM_BOT_TOKEN": "424242:tg-token-Yx55-never-print",
    "SUPABASE_KEY": "sb_secret_Kp93-never-print",
}


def test_no_secret_in_logs_metadata_reports_or_catalog(make_pipeline: MakePipeline, caplog: pytest.LogCaptureFixture,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline(**SECRETS)
    assert sorted(pipeline.settings.secret_values()) == sorted(SECRETS.values())
    sample.write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    caplog.set_level(logging.DEBUG)
    report = run_batch(pipeline)
    assert report.success

    outputs = {"python logs": caplog.text, "console": "".join(capsys.readouterr())}
    outputs["run report"] = report.to_json() + report.to_markdown()
    outputs.update({path.name: path.read_text() for path in pipeline.settings.storage.reports_dir.iterdir()})
    events = pipeline.instance.all_logs(report_run_id(pipeline))
    outputs["dagster events and metadata"] = "\n".join(str(event) for event in events)
    tables = [row["tablename"] for row in pipeline.catalog.conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
    outputs["catalog"] = "\n".join(
        str(row) for table in tables
        for row in pipeline.catalog.conn.execute(f'SELECT * FROM "{table}"').fetchall())
    assert len(outputs["catalog"]) > 1000 and len(outputs["dagster events and metadata"]) > 1000
    for where, text in outputs.items():
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} leaked into {where}"


def report_run_id(pipeline: Pipeline) -> str:
    [run] = pipeline.instance.get_runs(limit=1)
    return run.run_id
