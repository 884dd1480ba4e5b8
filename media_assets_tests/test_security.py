"""Secrets never leave the settings: a batch run with known secret values, then every output searched."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from media_assets import cli
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


def test_logs_reports_and_their_folders_are_owner_only(make_pipeline: MakePipeline) -> None:
    """A batch run by the CLI (its instance in DATA_DIR/dagster_home): every file it writes under DATA_DIR and the
    reports folder is 0600, and those folders and the Dagster home 0700 (0710 with the embedded server's own
    group when root runs it: that user must pass through DATA_DIR to its data folder)."""
    pipeline = make_pipeline()
    sample.make_photo(pipeline.settings.sources.folder_source_paths[0] / "a.jpg", seed=1, size=(64, 48))
    assert cli.main(["run"]) == 0
    data, reports = pipeline.settings.storage.data_dir, pipeline.settings.storage.reports_dir
    logs = list((data / "dagster_home" / "storage").rglob("*.err"))
    assert logs and [p for p in reports.iterdir() if p.suffix == ".md"], "the run wrote compute logs and a report"
    for folder in (data / "dagster_home", reports):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    roots_server = os.geteuid() == 0 and pipeline.settings.uses_embedded_postgres
    assert stat.S_IMODE(data.stat().st_mode) == (0o710 if roots_server else 0o700)
    written = [p for root in (data, reports) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in written
            if stat.S_IMODE(p.stat().st_mode) & 0o077} == {}
