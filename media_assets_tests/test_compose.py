"""docker-compose.yml, read as Compose reads it (YAML with merge keys): the services a Celery deployment needs,
every pipeline container with the same settings, catalog, broker and MEDIA_ROOT, volumes declared, workers named
apart, and the image able to run them. Built with `docker compose config` where a Docker engine exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from media_assets.defs.instance import DAGSTER_STORAGE_ENV
from media_assets.settings import KEYS, load_settings

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_SERVICES = {"code-server", "webserver", "daemon", "worker-1", "worker-2"}
SHARED_ENVIRONMENT = {"MEDIA_PIPELINE_DATABASE_URL", DAGSTER_STORAGE_ENV, "EXECUTOR", "CELERY_BROKER_URL",
                      "CELERY_RESULT_BACKEND"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_services_share_settings_catalog_broker_and_media_root() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == PIPELINE_SERVICES | {"postgres", "redis"}
    postgres = services["postgres"]["environment"]
    for name in PIPELINE_SERVICES:
        service = services[name]
        assert service["image"] == "media-pipeline" and service["build"] == "."
        environment = service["environment"]
        assert set(environment) == SHARED_ENVIRONMENT, name
        for key in ("MEDIA_PIPELINE_DATABASE_URL", DAGSTER_STORAGE_ENV):  # the database postgres creates
            assert f"{postgres['POSTGRES_USER']}:" in environment[key]
            assert environment[key].endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")
        assert environment[DAGSTER_STORAGE_ENV].startswith("postgresql+psycopg2://")  # dagster-postgres' driver
        assert environment["EXECUTOR"] == "celery" and environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        assert {"./config:/config:ro", "./data:/data"} <= set(service["volumes"])
        assert set(service["depends_on"]) == {"postgres", "redis"}
    named_volumes = {volume.split(":")[0] for service in services.values() for volume in service.get("volumes", [])
                     if not volume.startswith(("./", "$"))}
    assert named_volumes == set(compose["volumes"])


def test_two_workers_start_from_the_settings_under_their_own_names() -> None:
    services = _compose()["services"]
    names = []
    for worker in ("worker-1", "worker-2"):
        command = services[worker]["command"]
        assert command[:2] == ["media-pipeline", "worker"]
        names.append(command[command.index("--name") + 1])
    assert len(set(names)) == 2
    # The image holds the extra that brings Celery and its Redis transport.
    assert '".[celery]"' in (ROOT / "Dockerfile").read_text()
    assert "-w" in services["daemon"]["command"] and services["daemon"]["command"][-1] == "/app/workspace.yaml"


def test_the_webserver_and_the_daemon_use_the_one_code_server() -> None:
    """Neither manages a code server of its own (the daemon would replace it every minute): both read
    workspace.yaml, which names the code-server service's port and location."""
    services = _compose()["services"]
    server = services["code-server"]["command"]
    assert server[:3] == ["dagster", "code-server", "start"]
    [location] = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    assert location["grpc_server"] == {"host": "code-server", "port": int(server[server.index("-p") + 1]),
                                       "location_name": server[server.index("--location-name") + 1]}
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "/app/workspace.yaml" and "-m" not in command, name
    assert services["daemon"]["command"][0] == "media-pipeline-daemon"


def test_the_compose_environment_is_valid_celery_settings(tmp_path: Path) -> None:
    environment = _compose()["services"]["worker-1"]["environment"]
    settings = load_settings(tmp_path / "settings.env", environ={
        key: value for key, value in environment.items() if key in KEYS} | {"ENABLE_FOLDER_SOURCE": "false"})
    assert settings.execution.executor == "celery"
    assert settings.execution.celery_broker_url == environment["CELERY_BROKER_URL"]


def _has_compose() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="no Docker Compose here (docker compose config)")
def test_docker_compose_accepts_the_file() -> None:
    checked = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                             env={"POSTGRES_PASSWORD": "secret", "PATH": "/usr/bin:/bin:/usr/local/bin"},
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_kubernetes_values_mount_the_same_share_and_settings_in_every_pod() -> None:
    values = yaml.safe_load((ROOT / "deploy/k8s/values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    run_pods = launcher["config"]["k8sRunLauncher"]
    # Run pods get what the code server has: the data volume at /data (MEDIA_ROOT) and the settings.
    assert run_pods["volumeMounts"] == deployment["volumeMounts"]
    assert {"mountPath": "/data", "name": "data"} in [dict(m) for m in run_pods["volumeMounts"]]
    assert run_pods["envSecrets"] == deployment["envSecrets"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "media_assets.definitions"]
    assert values["postgresql"]["enabled"] is False  # Dagster's storage is the catalog's server


#: The key names Dagster's Helm chart accepts where deploy/k8s/values.yaml sets any, transcribed from the chart's
#: values schema (helm/dagster/schema/schema/charts in dagster-io/dagster: values.py, subschema/run_launcher.py,
#: postgresql.py, concurrency.py, dagster_user_deployments/subschema/user_deployments.py), so a misspelt or moved
#: key fails here, offline; `helm lint` checks the whole file against the schema where Helm is installed.
CHART_KEYS: dict[tuple[str, ...], set[str]] = {
    (): {"dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
         "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
         "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
         "telemetry", "serviceAccount", "global", "retention", "concurrency", "additionalInstanceConfig"},
    ("dagster-user-deployments",): {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    ("dagster-user-deployments", "deployments", "[]"): {
        "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "env",
        "envConfigMaps", "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe",
        "labels", "volumeMounts", "volumes", "schedulerName"},
    ("dagster-user-deployments", "deployments", "[]", "image"): {"repository", "tag", "pullPolicy"},
    ("runLauncher",): {"type", "config"},
    ("runLauncher", "config"): {"celeryK8sRunLauncher", "k8sRunLauncher", "customRunLauncher"},
    ("runLauncher", "config", "k8sRunLauncher"): {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile", "envConfigMaps",
        "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "failPodOnRunFailure", "resources",
        "schedulerName", "securityContext", "runK8sConfig"},
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"): {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata"},
    ("postgresql",): {"postgresqlScheme", "image", "enabled", "postgresqlHost", "postgresqlUsername",
                      "postgresqlPassword", "postgresqlDatabase", "postgresqlParams", "service"},
    ("postgresql", "service"): {"port"},
    ("concurrency",): {"enabled", "pools", "runs"},
    ("concurrency", "pools"): {"defaultLimit", "granularity", "opGranularityRunBuffer"},
    ("concurrency", "runs"): {"maxConcurrentRuns", "tagConcurrencyLimits"},
}


def _unknown_keys(value: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Keys of `value` the chart does not know at their place, for every place CHART_KEYS lists."""
    if isinstance(value, list):
        return [unknown for item in value for unknown in _unknown_keys(item, (*path, "[]"))]
    if not isinstance(value, dict):
        return []
    allowed = CHART_KEYS.get(path)
    unknown = [".".join((*path, key)) for key in value if allowed is not None and key not in allowed]
    return unknown + [found for key, item in value.items() for found in _unknown_keys(item, (*path, key))]


def test_the_kubernetes_values_use_only_keys_of_the_dagster_chart() -> None:
    values = yaml.safe_load((ROOT / "deploy/k8s/values.yaml").read_text())
    assert _unknown_keys(values) == []
    assert _unknown_keys({"runLauncher": {"config": {"k8sRunLauncher": {"runK8sConfigs": {}}}}}) == \
        ["runLauncher.config.k8sRunLauncher.runK8sConfigs"]  # the check itself sees a misspelt key
    # The pools and the run queue as in dagster.yaml; the chart refuses run limits in both of its places.
    assert values["concurrency"] == {"enabled": True, "runs": {"maxConcurrentRuns": 1}, "pools": {"defaultLimit": 1}}
    queued = values.get("dagsterDaemon", {}).get("runCoordinator", {}).get("config", {}).get("queuedRunCoordinator")
    assert not (queued or {}).get("maxConcurrentRuns")
    assert values["runLauncher"]["type"] in {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"}
