"""The Supabase mirror against a real PostgREST 12.0.2 over a real PostgreSQL, behind a gateway like Supabase's."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize
from postgrest import APIError
from supabase import ClientOptions, create_client

from media_assets import cli
from media_assets.catalog.migrate import alembic_config
from media_assets.catalog.mirror import MirroredTable, mirror_status, pending_counts, read_changes
from media_assets.catalog.repository import Catalog
from media_assets.catalog.sidecars import mark_sidecars_sorted, record_sidecar
from media_assets.catalog.states import FileState
from media_assets.defs.mirror.supabase import SupabaseResource, supabase_mirror, supabase_mirror_sensor
from media_assets.defs.resources import CatalogResource, SettingsResource
from media_assets.media.sample_library import write_sample_library
from media_assets.mirror import (
    MirrorConfig,
    MirrorError,
    MirrorKeyError,
    MirrorSchemaError,
    SupabaseRemote,
    consecutive_failures,
    has_pending_changes,
    run_cycle,
    sync_once,
)
from media_assets.mirror.remote import key_role
from media_assets.mirror.sync import ALERT_AFTER_FAILURES, ALERT_KEY, SyncReport
from media_assets.mirror.tables import MIRRORED_TABLES
from media_assets.runner import run_batch
from media_assets.settings import SettingsError, build_settings
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.postgrest_server import Fault, NpmMissing, SupabaseStack, apply_migrations, role_key


@pytest.fixture(scope="module")
def stack(postgres_admin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupabaseStack]:
    try:
        started = SupabaseStack(postgres_admin, tmp_path_factory.mktemp("supabase"))
    except NpmMissing as error:
        pytest.skip(str(error))
    yield started
    started.close()


@pytest.fixture
def supabase(stack: SupabaseStack) -> SupabaseStack:
    stack.reset()
    return stack


def _remote(supabase: SupabaseStack, *, key: str | None = None, timeout: float = 5.0, attempts: int = 3,
            backoff: float = 0.01) -> SupabaseRemote:
    return SupabaseRemote(supabase.url, key or supabase.key, timeout_seconds=timeout, max_attempts=attempts,
                          backoff_seconds=backoff)


@pytest.fixture
def remote(supabase: SupabaseStack) -> Iterator[SupabaseRemote]:
    client = _remote(supabase)
    yield client
    client.close()


def _local_rows(catalog: Catalog, table: str) -> dict[Any, dict[str, Any]]:
    spec = next(t for t in MIRRORED_TABLES if t.name == table)
    rows = catalog.conn.execute(f"SELECT {spec.select_list} FROM {table}").fetchall()
    return {row["id"]: dict(row) for row in rows}


def assert_mirrored(catalog: Catalog, supabase: SupabaseStack) -> None:
    for table in MIRRORED_TABLES:
        assert supabase.rows(table.name, table.columns) == _local_rows(catalog, table.name), table.name
    assert not has_pending_changes(catalog)


def _small_catalog(catalog: Catalog) -> None:
    """One batch with a little of everything: files in several states, a duplicate, a phase run, uploads, a
    sidecar."""
    catalog.create_batch("20240701-120000")
    ids = [catalog.register_file("20240701-120000", source="folder", source_id=f"DCIM/IMG_{i}.jpg",
                                 source_version="v1", original_name=f"IMG_{i}.jpg", size_bytes=1000 + i)
           for i in range(3)]
    files = [catalog.move(catalog.get_file(present(i)), FileState.DOWNLOADED, content_hash="abc") for i in ids]
    keeper = catalog.move(files[0], FileState.UNIQUE)
    catalog.mark_duplicate(files[1], keeper, kind="exact")
    run = catalog.start_phase_run("20240701-120000", "deduplication", "run-1")
    catalog.finish_phase_run(run, status="succeeded", files_processed=3, details={"duplicates": 1})
    catalog.record_upload(present(ids[0]), "local", status="uploaded", remote_id="2024/IMG_0.jpg", checksum="abc")
    catalog.record_upload(present(ids[2]), "local", status="not_accepted", remote_id=None, checksum=None,
                          detail="too big")
    record_sidecar(catalog, present(ids[0]), "IMG_0.AAE", "originals/20240701-120000/1-IMG_0.AAE", "def")


def _bulk_files(catalog: Catalog, batch_id: str, count: int) -> None:
    catalog.create_batch(batch_id)
    catalog.conn.execute(
        "INSERT INTO media_files (batch_id, source, source_id, original_name, size_bytes, state, captured_at)"
        " SELECT %s, 'folder', 'bulk/' || g, 'IMG_' || g || '.jpg', g * 100, 'discovered',"
        " timestamp '2024-01-01' + g * interval '1 minute' FROM generate_series(1, %s) g", (batch_id, count))


def test_first_full_mirror_sends_every_table_in_one_request_each(catalog: Catalog, supabase: SupabaseStack,
                                                                 remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    report = sync_once(catalog, remote, chunk_size=500)

    assert_mirrored(catalog, supabase)
    assert report.rows_upserted == {"batches": 1, "media_files": 3, "duplicate_files": 1, "phase_runs": 1,
                                    "uploads": 2, "sidecars": 1}
    assert not report.rows_deleted
    # Six empty selects check the schema, then one upsert per table; the client counted what the gateway saw.
    assert supabase.gateway.requests == {"GET": 6, "POST": 6}
    assert report.requests == supabase.gateway.total == 12
    assert report.lag_seconds is not None and report.lag_seconds >= 0
    assert supabase.rows("phase_runs")[1]["details"] == {"duplicates": 1}


def test_incremental_changes_and_deletes_send_only_what_changed(catalog: Catalog, supabase: SupabaseStack,
                                                               remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    supabase.gateway.reset()

    catalog.set_error(3, "cannot read EXIF")
    catalog.register_file("20240701-120000", source="folder", source_id="DCIM/new.jpg", source_version="v1",
                          original_name="new.jpg")
    catalog.conn.execute("DELETE FROM uploads WHERE file_id = 3")
    catalog.conn.execute("DELETE FROM phase_runs")
    report = sync_once(catalog, remote, chunk_size=500)

    assert_mirrored(catalog, supabase)
    assert report.rows_upserted == {"media_files": 2}
    assert report.rows_deleted == {"uploads": 1, "phase_runs": 1}
    assert supabase.gateway.requests == {"GET": 6, "POST": 3}  # deletes go through mirror_delete, keys in the body
    assert supabase.rows("media_files")[3]["error"] == "cannot read EXIF"


def test_a_row_updated_and_deleted_between_syncs_is_deleted_remotely(catalog: Catalog, supabase: SupabaseStack,
                                                                    remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    catalog.mark_uploads_verified([1])
    catalog.conn.execute("DELETE FROM uploads WHERE file_id = 1")
    sync_once(catalog, remote, chunk_size=500)
    assert_mirrored(catalog, supabase)
    assert 1 not in {row["file_id"] for row in supabase.rows("uploads").values()}


def test_sidecars_are_mirrored_as_they_are_sorted_and_deleted(catalog: Catalog, supabase: SupabaseStack,
                                                               remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    (sidecar_id,) = supabase.rows("sidecars")
    mark_sidecars_sorted(catalog, [(sidecar_id, "uploaded/2024/07/01/IMG_0.AAE")])
    record_sidecar(catalog, 1, "IMG_0.xmp", "originals/20240701-120000/1-IMG_0.xmp", "fed")
    assert sync_once(catalog, remote, chunk_size=500).rows_upserted == {"sidecars": 2}
    assert supabase.rows("sidecars")[sidecar_id]["sorted_path"] == "uploaded/2024/07/01/IMG_0.AAE"
    catalog.conn.execute("DELETE FROM sidecars WHERE id = %s", (sidecar_id,))
    assert sync_once(catalog, remote, chunk_size=500).rows_deleted == {"sidecars": 1}
    assert_mirrored(catalog, supabase)


def test_2500_rows_go_past_the_1000_row_cap_in_exactly_ceil_rows_over_chunk_upserts(
        catalog: Catalog, supabase: SupabaseStack, remote: SupabaseRemote) -> None:
    _bulk_files(catalog, "bulk", 2500)
    report = sync_once(catalog, remote, chunk_size=500)

    assert report.rows_upserted == {"batches": 1, "media_files": 2500}
    assert supabase.gateway.requests["POST"] == 1 + math.ceil(2500 / 500)
    # Through the API a select stops at 1000 rows: page with range() and compare with the exact count.
    client = create_client(supabase.url, supabase.key, options=ClientOptions(httpx_client=remote._http))
    capped = client.table("media_files").select("id").execute()
    assert len(capped.data) == 1000
    ids: list[int] = []
    for start in range(0, 3000, 1000):
        # postgrest's CountMethod is a StrEnum, which mypy's Python 3.10 target does not know: "exact" is one.
        query = client.table("media_files").select("id", count="exact")  # type: ignore[arg-type]
        page = query.order("id").range(start, start + 999).execute()
        ids += [row["id"] for row in page.data]
        assert page.count == 2500
    assert sorted(ids) == sorted(_local_rows(catalog, "media_files")) and len(set(ids)) == 2500
    assert_mirrored(catalog, supabase)


def test_postgrest_stopped_mid_sync_loses_and_duplicates_nothing(catalog: Catalog, supabase: SupabaseStack) -> None:
    _bulk_files(catalog, "bulk", 2500)
    remote = _remote(supabase, attempts=2)
    # Requests 1-6 check the tables, 7 sends the batch, 8 the first 500 files; PostgREST dies before the 9th.
    supabase.gateway.on_request = lambda n: supabase.postgrest.stop() if n == 9 else None
    with pytest.raises(MirrorError, match="failed 2 times"):
        sync_once(catalog, remote, chunk_size=500)

    assert len(supabase.rows("media_files")) == 500
    assert pending_counts(catalog) == {"media_files": 2000}
    supabase.gateway.on_request = None
    supabase.postgrest.start()
    report = sync_once(catalog, remote, chunk_size=500)
    remote.close()

    assert report.rows_upserted == {"media_files": 2000}
    assert_mirrored(catalog, supabase)


def test_an_outage_shorter_than_the_retries_is_bridged_within_one_sync(catalog: Catalog,
                                                                      supabase: SupabaseStack) -> None:
    _bulk_files(catalog, "bulk", 1200)
    remote = _remote(supabase, attempts=6, backoff=0.1)

    def outage(number: int) -> None:
        if number == 8:  # after the six table checks and the batch
            supabase.postgrest.stop()
            threading.Timer(0.3, supabase.postgrest.start).start()

    supabase.gateway.on_request = outage
    report = sync_once(catalog, remote, chunk_size=500)
    remote.close()

    assert report.retries >= 1
    assert report.rows_upserted == {"batches": 1, "media_files": 1200}
    assert_mirrored(catalog, supabase)


def test_injected_500s_and_timeouts_are_retried_with_backoff(catalog: Catalog, supabase: SupabaseStack) -> None:
    _small_catalog(catalog)
    pauses: list[float] = []
    remote = SupabaseRemote(supabase.url, supabase.key, timeout_seconds=0.5, max_attempts=4, backoff_seconds=0.05,
                            sleep=pauses.append)
    # A 500, a 503, then an answer that comes after the client gave up (the upsert still lands: sent twice, no harm).
    supabase.gateway.faults.extend([Fault(status=500, method="POST"), Fault(status=503, method="POST"),
                                    Fault(delay=1.0, method="POST")])
    report = sync_once(catalog, remote, chunk_size=500)
    remote.close()

    assert report.retries == 3
    assert pauses == [0.05, 0.1, 0.2]
    assert supabase.gateway.requests["POST"] == 6 + 3
    assert_mirrored(catalog, supabase)


def test_retries_give_up_after_max_attempts_and_keep_the_changes(catalog: Catalog, supabase: SupabaseStack) -> None:
    _small_catalog(catalog)
    remote = _remote(supabase, attempts=3)
    supabase.gateway.faults.extend([Fault(status=502, method="POST")] * 3)
    with pytest.raises(MirrorError, match="upserting 1 rows into batches failed 3 times; last error: HTTP 502"):
        sync_once(catalog, remote, chunk_size=500)
    remote.close()
    assert pending_counts(catalog)["batches"] == 1
    assert supabase.rows("batches") == {}


def test_a_missing_remote_table_stops_the_sync_with_what_to_do(catalog: Catalog, supabase: SupabaseStack,
                                                              remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    supabase.drop_table("uploads")
    before = pending_counts(catalog)
    with pytest.raises(MirrorSchemaError, match=r"uploads.*apply supabase/migrations/\*\.sql"):
        sync_once(catalog, remote, chunk_size=500)
    assert supabase.gateway.requests == {"GET": 5}  # checked up to the missing table, nothing sent
    assert pending_counts(catalog) == before


def test_a_wrong_key_is_reported_as_such(catalog: Catalog, supabase: SupabaseStack) -> None:
    _small_catalog(catalog)
    for key in ("not-the-key", role_key("service_role", secret="another project's secret, 32 chars+")):
        remote = _remote(supabase, key=key)
        with pytest.raises(MirrorError, match="SUPABASE_KEY"):
            sync_once(catalog, remote, chunk_size=500)
        remote.close()
    assert supabase.gateway.total == 0  # refused here, or at the gateway before PostgREST


def test_nothing_changed_means_zero_requests(catalog: Catalog, supabase: SupabaseStack,
                                             remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    supabase.gateway.reset()
    report = sync_once(catalog, remote, chunk_size=500)
    assert report.requests == 0 and report.rows_sent == 0 and report.lag_seconds is None
    assert supabase.gateway.total == 0


def test_consecutive_failures_are_counted_and_alert_once(catalog: Catalog, supabase: SupabaseStack) -> None:
    _small_catalog(catalog)
    alerts: list[tuple[str, str]] = []
    remote = _remote(supabase, attempts=1)
    supabase.postgrest.stop()
    for expected in range(1, ALERT_AFTER_FAILURES + 2):
        with pytest.raises(MirrorError):
            run_cycle(catalog, remote, 500, alert=lambda key, text: alerts.append((key, text)))
        assert consecutive_failures(catalog) == expected
    assert len(alerts) == 1 and alerts[0][0] == ALERT_KEY and "3 times in a row" in alerts[0][1]

    supabase.postgrest.start()
    run_cycle(catalog, remote, 500)
    remote.close()
    assert consecutive_failures(catalog) == 0
    assert_mirrored(catalog, supabase)


def test_the_migration_queues_rows_that_existed_before_it(catalog_conninfo: str) -> None:
    """A catalog upgraded to 0003 gets a full first mirror: the rows it already had are queued."""
    config = alembic_config(catalog_conninfo)
    command.downgrade(config, "0002")
    with psycopg.connect(catalog_conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO batches (id) VALUES ('old')")
    command.upgrade(config, "head")
    catalog = Catalog(catalog_conninfo)
    assert pending_counts(catalog) == {"batches": 1}
    catalog.close()


def test_the_sidecar_migration_queues_the_sidecars_catalogued_before_it(catalog: Catalog,
                                                                        catalog_conninfo: str) -> None:
    config = alembic_config(catalog_conninfo)
    [revision] = [r for r in ScriptDirectory.from_config(config).walk_revisions() if r.path.endswith("_sidecars.py")]
    assert isinstance(revision.down_revision, str), "the sidecars migration follows one revision"
    _small_catalog(catalog)  # by today's code, on today's schema
    command.downgrade(config, revision.down_revision)
    catalog.conn.execute("DELETE FROM mirror_outbox")
    command.upgrade(config, "head")
    assert pending_counts(catalog) == {"sidecars": 1}


# -- settings ------------------------------------------------------------------------------------------------

def _config(tmp_path: Path, **values: str) -> MirrorConfig:
    return MirrorConfig.from_settings(build_settings({"ENABLE_FOLDER_SOURCE": "false", **values},
                                                     tmp_path / "settings.env"))


def test_mirror_settings_are_off_by_default_and_checked_when_on(tmp_path: Path) -> None:
    assert _config(tmp_path).enabled is False
    assert _config(tmp_path).interval_seconds == 300 and _config(tmp_path).chunk_size == 500
    with pytest.raises(SettingsError, match="SUPABASE_URL"):
        _config(tmp_path, ENABLE_SUPABASE_MIRROR="true", SUPABASE_KEY="k")
    with pytest.raises(SettingsError, match="SUPABASE_KEY"):
        _config(tmp_path, ENABLE_SUPABASE_MIRROR="true", SUPABASE_URL="https://x.supabase.co")
    with pytest.raises(SettingsError, match="SUPABASE_CHUNK_SIZE"):
        _config(tmp_path, SUPABASE_CHUNK_SIZE="0")
    config = _config(tmp_path, ENABLE_SUPABASE_MIRROR="yes", SUPABASE_URL="https://x.supabase.co/",
                     SUPABASE_KEY="secret", SUPABASE_CHUNK_SIZE="200")
    assert (config.url, config.chunk_size) == ("https://x.supabase.co", 200)
    assert "secret" not in repr(config)


# -- Dagster -------------------------------------------------------------------------------------------------

def _mirror_settings(supabase: SupabaseStack, enabled: bool = True) -> dict[str, str]:
    return {"ENABLE_SUPABASE_MIRROR": str(enabled).lower(), "SUPABASE_URL": supabase.url,
            "SUPABASE_KEY": supabase.key, "SUPABASE_CHUNK_SIZE": "2"}


def _sensor_result(tmp_path: Path) -> object:  # whatever the sensor returned
    settings = SettingsResource(settings_file=str(tmp_path / "settings.env"))
    with build_sensor_context(instance=DagsterInstance.ephemeral(),
                              resources={"settings": settings, "catalog": CatalogResource(settings=settings)}) as ctx:
        return supabase_mirror_sensor(ctx)


def test_the_sensor_requests_a_run_only_when_something_changed(make_pipeline: MakePipeline, supabase: SupabaseStack,
                                                               tmp_path: Path) -> None:
    pipeline = make_pipeline(**_mirror_settings(supabase))
    assert isinstance(_sensor_result(tmp_path), SkipReason)  # a fresh catalog: nothing to mirror

    _small_catalog(pipeline.catalog)
    assert isinstance(_sensor_result(tmp_path), RunRequest)
    assert supabase.gateway.total == 0  # the sensor only looked at the local outbox

    result = materialize([supabase_mirror], resources={
        "catalog": CatalogResource(settings=SettingsResource()),
        "supabase": SupabaseResource(settings=SettingsResource())}, instance=DagsterInstance.ephemeral())
    assert result.success
    [materialization] = result.asset_materializations_for_node("supabase_mirror")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    # Six table checks; chunks of 2: media_files 3 rows -> 2 requests, uploads 2 -> 1, the other four tables 1 each.
    assert metadata["rows_sent"] == 9 and metadata["upserted_media_files"] == 3
    assert metadata["requests"] == 6 + 7 == supabase.gateway.total
    assert_mirrored(pipeline.catalog, supabase)

    supabase.gateway.reset()
    skipped = _sensor_result(tmp_path)
    assert isinstance(skipped, SkipReason) and "Nothing changed" in (skipped.skip_message or "")
    assert supabase.gateway.total == 0


@pytest.mark.slow
def test_a_real_batch_is_mirrored_in_full(make_pipeline: MakePipeline, supabase: SupabaseStack,
                                          remote: SupabaseRemote) -> None:
    """The triggers see every write the eight phases make: after a batch, the mirror equals the catalog."""
    pipeline = make_pipeline()
    write_sample_library(pipeline.settings.sources.folder_source_paths[0])
    report = run_batch(pipeline)
    assert report.success, report.error
    sync_once(pipeline.catalog, remote, chunk_size=500)
    assert_mirrored(pipeline.catalog, supabase)
    assert {row["state"] for row in supabase.rows("media_files").values()} >= {"verified", "duplicate"}
    assert supabase.rows("phase_runs") and supabase.rows("uploads") and supabase.rows("duplicate_files")


def test_a_failed_sync_run_fails_and_is_counted(make_pipeline: MakePipeline, supabase: SupabaseStack) -> None:
    pipeline = make_pipeline(**_mirror_settings(supabase), SUPABASE_MAX_ATTEMPTS="1")
    _small_catalog(pipeline.catalog)
    supabase.postgrest.stop()
    result = materialize([supabase_mirror], resources={
        "catalog": CatalogResource(settings=SettingsResource()),
        "supabase": SupabaseResource(settings=SettingsResource())}, instance=DagsterInstance.ephemeral(),
        raise_on_error=False)
    assert not result.success
    assert consecutive_failures(pipeline.catalog) == 1
    assert has_pending_changes(pipeline.catalog)


def test_the_sensor_stays_quiet_when_the_mirror_is_off(make_pipeline: MakePipeline, supabase: SupabaseStack,
                                                       tmp_path: Path) -> None:
    pipeline = make_pipeline(**_mirror_settings(supabase, enabled=False))
    _small_catalog(pipeline.catalog)
    result = _sensor_result(tmp_path)
    assert isinstance(result, SkipReason) and "ENABLE_SUPABASE_MIRROR" in (result.skip_message or "")


def test_local_rows_read_back_as_json_keep_every_column(catalog: Catalog) -> None:
    """Every row of a request carries the same full key set (the key-set trap), nulls included, and its stamp."""
    _small_catalog(catalog)
    for table in MIRRORED_TABLES:
        rows = [json.loads(c.row or "null") for c in read_changes(catalog, table, after="", limit=500)]
        assert rows and all(row is not None and set(row) == {*table.columns, "mirror_stamp"} for row in rows)


# -- convergence -------------------------------------------------------------------------------------------

def test_a_full_pass_repairs_a_lost_table_dashboard_edits_and_extra_rows(catalog: Catalog, supabase: SupabaseStack,
                                                                         remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    supabase.drop_table("uploads")
    apply_migrations(supabase.db)  # re-created, empty
    supabase.wait_for_schema("uploads", present=True)
    supabase.execute("UPDATE media_files SET state = 'verified', original_name = NULL WHERE id = 1")
    supabase.execute("DELETE FROM duplicate_files")
    supabase.execute("INSERT INTO phase_runs (id, batch_id, phase) VALUES (999, '20240701-120000', 'compression')")
    supabase.gateway.reset()

    assert sync_once(catalog, remote, chunk_size=500).requests == 0  # the outbox alone never notices
    report = sync_once(catalog, remote, chunk_size=500, full=True)

    assert_mirrored(catalog, supabase)
    assert report.rows_upserted == {"media_files": 1, "duplicate_files": 1, "uploads": 2}
    assert report.rows_deleted == {"phase_runs": 1}
    # One checksum request per table; row hashes where a range differs and the remote has rows in it (media_files,
    # phase_runs; the emptied duplicate_files and uploads need none: all their rows go); then one write each.
    assert supabase.gateway.requests == {"POST": 6 + 2 + 4}

    supabase.gateway.reset()
    again = sync_once(catalog, remote, chunk_size=500, full=True)
    assert again.rows_sent == 0 and supabase.gateway.requests == {"POST": 6}


def test_a_new_project_is_filled_by_one_full_pass(catalog: Catalog, supabase: SupabaseStack,
                                                  remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    _bulk_files(catalog, "bulk", 2500)
    sync_once(catalog, remote, chunk_size=500)
    supabase.reset()  # a new, empty project with the migrations applied

    report = sync_once(catalog, remote, chunk_size=500, full=True)
    assert_mirrored(catalog, supabase)
    assert report.rows_upserted["media_files"] == 2503


def test_floats_timestamps_and_json_hash_the_same_on_both_sides(catalog: Catalog, supabase: SupabaseStack,
                                                               remote: SupabaseRemote) -> None:
    """An unchanged mirror must compare equal, or every daily pass would resend rows: the catalog's session time
    zone differs from the remote's, and floats and JSON details must print the same."""
    _small_catalog(catalog)
    catalog.conn.execute("SET timezone = 'Pacific/Chatham'")
    catalog.conn.execute("UPDATE media_files SET quality_score = 0.1 + id / 3.0, phash = -id * 12345678901,"
                         " captured_at = '2024-02-29 23:59:59.123456'")
    sync_once(catalog, remote, chunk_size=500)
    report = sync_once(catalog, remote, chunk_size=500, full=True)
    assert report.rows_sent == 0 and report.requests == len(MIRRORED_TABLES)


class _RemoteWithHook(SupabaseRemote):
    """A real remote that runs `hook` once, just before its first upsert into `table`: between reading the rows
    and sending them."""

    def __init__(self, supabase: SupabaseStack, table: str, hook: Callable[[], None]) -> None:
        super().__init__(supabase.url, supabase.key, timeout_seconds=5, max_attempts=3, backoff_seconds=0.01)
        self._table = table
        self._hook: Callable[[], None] | None = hook

    def upsert(self, table: MirroredTable, rows: list[str], *, force: bool = False) -> int:
        if table.name == self._table and self._hook is not None:
            hook, self._hook = self._hook, None
            hook()
        return super().upsert(table, rows, force=force)


def test_an_older_write_never_lands_over_a_newer_one(catalog: Catalog, catalog_conninfo: str,
                                                     supabase: SupabaseStack, remote: SupabaseRemote) -> None:
    """Pass A reads the batch as running; A's lock connection dies (a pass that lost its lock), the batch
    succeeds and pass B sends that; then A's older upsert lands."""
    _small_catalog(catalog)
    catalog.set_batch_status("20240701-120000", "running")
    other = Catalog(catalog_conninfo)
    seen: list[SyncReport] = []

    def newer_pass() -> None:
        catalog.conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE application_name LIKE 'media-pipeline|supabase mirror|%%'")
        catalog.set_batch_status("20240701-120000", "succeeded")
        seen.append(sync_once(other, remote, chunk_size=500))

    racing = _RemoteWithHook(supabase, "batches", newer_pass)
    report = sync_once(catalog, racing, chunk_size=500)
    racing.close()
    other.close()

    assert seen[0].rows_upserted["batches"] == 1
    assert report.rows_outdated == 1
    assert supabase.rows("batches")["20240701-120000"]["status"] == "succeeded"
    assert_mirrored(catalog, supabase)


def test_one_pass_at_a_time(catalog: Catalog, catalog_conninfo: str, supabase: SupabaseStack,
                            remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    other = Catalog(catalog_conninfo)
    seen: list[SyncReport] = []
    racing = _RemoteWithHook(supabase, "media_files", lambda: seen.append(sync_once(other, remote, chunk_size=500)))
    sync_once(catalog, racing, chunk_size=500)
    racing.close()
    other.close()

    assert seen[0].skipped and "supabase mirror" in seen[0].skipped and seen[0].requests == 0
    assert_mirrored(catalog, supabase)


def test_a_key_that_is_not_the_service_roles_is_refused_before_any_request(catalog: Catalog,
                                                                           supabase: SupabaseStack,
                                                                           remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    catalog.conn.execute("DELETE FROM uploads")
    supabase.gateway.reset()
    anon = _remote(supabase, key=supabase.anon_key)
    with pytest.raises(MirrorKeyError) as refused:
        run_cycle(catalog, anon, 500)
    anon.close()

    message = str(refused.value)
    assert "role 'anon'" in message and "service_role" in message and message.count(". ") == 0
    assert supabase.gateway.total == 0
    assert pending_counts(catalog) == {"uploads": 2} and len(supabase.rows("uploads")) == 2
    assert key_role("sb_publishable_abc") == "anon" and key_role("sb_secret_abc") == "service_role"


def test_rows_the_remote_did_not_delete_stay_queued(catalog: Catalog, supabase: SupabaseStack,
                                                    remote: SupabaseRemote) -> None:
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    supabase.execute("CREATE FUNCTION keep_upload_1() RETURNS trigger LANGUAGE plpgsql AS $$"
                     " BEGIN RETURN CASE WHEN OLD.id = 1 THEN NULL ELSE OLD END; END $$;"
                     " CREATE TRIGGER keep_upload_1 BEFORE DELETE ON uploads FOR EACH ROW"
                     " EXECUTE FUNCTION keep_upload_1()")
    try:
        catalog.conn.execute("DELETE FROM uploads")
        with pytest.raises(MirrorError, match=r"did not delete .*uploads 1"):
            run_cycle(catalog, remote, 500)
        assert pending_counts(catalog) == {"uploads": 1} and set(supabase.rows("uploads")) == {1}
        assert mirror_status(catalog).last_error is not None
    finally:
        supabase.execute("DROP TRIGGER keep_upload_1 ON uploads; DROP FUNCTION keep_upload_1()")
    run_cycle(catalog, remote, 500)
    assert_mirrored(catalog, supabase)


def test_deletes_of_5000_rows_keep_every_url_under_8_kb(catalog: Catalog, supabase: SupabaseStack,
                                                        remote: SupabaseRemote) -> None:
    _bulk_files(catalog, "bulk", 5000)
    sync_once(catalog, remote, chunk_size=5000)
    catalog.conn.execute("DELETE FROM media_files")
    supabase.gateway.reset()
    report = sync_once(catalog, remote, chunk_size=5000)

    assert report.rows_deleted == {"media_files": 5000}
    assert supabase.gateway.longest_url < 8192
    assert_mirrored(catalog, supabase)


def test_the_remote_schema_serves_apps(catalog: Catalog, supabase: SupabaseStack, remote: SupabaseRemote) -> None:
    apply_migrations(supabase.db)  # every migration a second time: safe
    _small_catalog(catalog)
    catalog.conn.execute("UPDATE media_files SET phash = -2 WHERE id = 1")
    catalog.conn.execute("UPDATE media_files SET phash = 9007199254740993 WHERE id = 2")  # 2^53 + 1
    sync_once(catalog, remote, chunk_size=500)
    client = create_client(supabase.url, supabase.key, options=ClientOptions(httpx_client=remote._http))

    files = client.table("media_files").select("id, phash_hex, uploads(destination, status)").order("id").execute()
    assert [f["phash_hex"] for f in files.data] == ["fffffffffffffffe", "0020000000000001", None]
    assert files.data[0]["uploads"] == [{"destination": "local", "status": "uploaded"}]
    keepers = client.table("duplicate_files").select("file_id, keeper:media_files!keeper_id(id)").execute()
    assert keepers.data == [{"file_id": 2, "keeper": {"id": 1}}]

    [overview] = client.table("library_overview").select("*").execute().data
    assert isinstance(overview, dict)
    assert overview["batch_id"] == "20240701-120000" and overview["files"] == 3 and overview["duplicates"] == 1
    with pytest.raises(APIError):
        client.table("library_overview").insert({"batch_id": "x"}).execute()
    with pytest.raises(APIError):  # the mirror's functions are the service role's alone
        create_client(supabase.url, supabase.anon_key, options=ClientOptions(httpx_client=remote._http)).rpc(
            "mirror_delete", {"p_table": "uploads", "p_keys": ["1"]}).execute()
    assert len(supabase.rows("uploads")) == 2


def test_the_sensor_asks_for_a_full_pass_once_a_day(make_pipeline: MakePipeline, supabase: SupabaseStack,
                                                    tmp_path: Path) -> None:
    pipeline = make_pipeline(**_mirror_settings(supabase))
    _small_catalog(pipeline.catalog)
    run_cycle(pipeline.catalog, _remote(supabase), 500)
    supabase.execute("DELETE FROM uploads")  # e.g. by hand in the Dashboard
    assert isinstance(_sensor_result(tmp_path), SkipReason)

    pipeline.catalog.conn.execute("UPDATE mirror_state SET last_full_at = now() - interval '25 hours'")
    request = _sensor_result(tmp_path)
    assert isinstance(request, RunRequest) and request.tags["mirror/full"] == "true"
    result = materialize([supabase_mirror], run_config=request.run_config, resources={
        "catalog": CatalogResource(settings=SettingsResource()),
        "supabase": SupabaseResource(settings=SettingsResource())}, instance=DagsterInstance.ephemeral())
    assert result.success
    assert_mirrored(pipeline.catalog, supabase)
    assert isinstance(_sensor_result(tmp_path), SkipReason)  # the full pass was recorded


def test_mirror_and_status_from_the_command_line(make_pipeline: MakePipeline, supabase: SupabaseStack,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = make_pipeline(**_mirror_settings(supabase), SUPABASE_MAX_ATTEMPTS="1")
    _small_catalog(pipeline.catalog)
    assert cli.main(["status"]) == 0
    status = capsys.readouterr().out
    assert "Supabase mirror (on):" in status
    assert "pending rows     batches 1, duplicate_files 1, media_files 3" in status
    assert "last success     never" in status

    supabase.postgrest.stop()
    pipeline.catalog.conn.execute("UPDATE mirror_state SET consecutive_failures = 1")
    assert cli.main(["mirror"]) == 1
    assert "failed" in capsys.readouterr().err
    assert cli.main(["status"]) == 0
    status = capsys.readouterr().out
    assert "failures in a row 2" in status and "last error       Supabase mirror:" in status

    supabase.postgrest.start()
    assert cli.main(["mirror"]) == 0
    assert "9 rows sent" in capsys.readouterr().out
    supabase.execute("DELETE FROM media_files")  # and, by its foreign keys, the uploads, duplicates and sidecars
    assert cli.main(["mirror", "--full"]) == 0
    assert "full pass: 7 rows sent" in capsys.readouterr().out
    assert_mirrored(pipeline.catalog, supabase)
    assert cli.main(["status"]) == 0
    status = capsys.readouterr().out
    assert "pending rows     none" in status and "failures in a row" not in status and "last error" not in status


def test_a_child_whose_parent_is_not_remote_yet_waits_for_the_next_pass(catalog: Catalog, supabase: SupabaseStack,
                                                                         remote: SupabaseRemote) -> None:
    """The remote's foreign keys refuse an upload of a file it does not have yet (the file was added after this
    pass read media_files): the uploads stay queued, the rest of the pass goes on, and the next pass sends them."""
    _small_catalog(catalog)
    sync_once(catalog, remote, chunk_size=500)
    new = catalog.register_file("20240701-120000", source="folder", source_id="DCIM/late.jpg", source_version="v1",
                                original_name="late.jpg")
    catalog.record_upload(present(new), "local", status="uploaded", remote_id="2024/late.jpg", checksum="abc")
    queued_file = pending_counts(catalog)
    catalog.conn.execute("DELETE FROM mirror_outbox WHERE table_name = 'media_files'")  # read before it existed

    report = sync_once(catalog, remote, chunk_size=500)
    assert report.rows_deferred == {"uploads": 1} and pending_counts(catalog) == {"uploads": 1}
    assert queued_file == {"media_files": 1, "uploads": 1}

    sync_once(catalog, remote, chunk_size=500, full=True)  # the file reaches the remote
    sync_once(catalog, remote, chunk_size=500)
    assert_mirrored(catalog, supabase)
