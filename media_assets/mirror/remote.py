"""The remote side of the mirror: supabase-py against the project's REST API, with our own retries.

Rows are written and deleted through the mirror's SQL functions (supabase/migrations): upserts that keep the
newer of two writes by the rows' change stamps, deletes whose keys travel in the body and that answer which rows
are still there, and checksums per key range for the reconciliation.

supabase-py retries only GET/HEAD and never timeouts, while every write here is idempotent, so every request goes
through one retry loop with exponential backoff for 5xx answers, timeouts and connection errors. 4xx answers are
not retried: they need a person (a wrong key, a missing table).

supabase-py, httpx and PyJWT (~30 MB together) are imported when a remote is made or a key is read, not with this
module: every run imports the mirror's code, and most installations mirror nothing."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from media_assets.mirror.config import MirrorConfig
from media_assets.mirror.tables import MirroredTable

if TYPE_CHECKING:
    import httpx
    from postgrest import APIError

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0
#: Error codes for a table, column or function PostgREST does not know (PostgREST 12 and newer, and PostgreSQL's).
SCHEMA_ERROR_CODES = frozenset({"PGRST205", "PGRST204", "PGRST202", "42P01", "42703", "42883"})
APPLY_MIGRATIONS = ("apply supabase/migrations/*.sql to the Supabase project (Dashboard -> SQL Editor -> run the "
                    "file, or `supabase db push`), then let the sync run again")


class MirrorError(RuntimeError):
    """Supabase refused the request, or did not answer after every attempt; nothing was marked as mirrored."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        #: PostgREST's or PostgreSQL's error code, when Supabase answered with one.
        self.code = code


class MirrorSchemaError(MirrorError):
    """The Supabase project lacks the mirror's tables, columns or functions."""


class MirrorKeyError(MirrorError):
    """SUPABASE_KEY is not the project's service_role key."""


def key_role(key: str) -> str | None:
    """The role a Supabase key acts as: the `role` claim of a legacy JWT key, `service_role` for a new secret key
    (`sb_secret_...`), `anon` for a publishable one; None when it is neither."""
    if key.startswith("sb_secret_"):
        return "service_role"
    if key.startswith("sb_publishable_"):
        return "anon"
    import jwt

    try:
        claims = jwt.decode(key, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


def refuse_unless_service_role(key: str) -> None:
    """The mirror deletes and rewrites rows that row level security hides from other keys: with the anon key a
    delete "succeeds" without deleting anything. So anything but the service_role key is refused up front."""
    role = key_role(key)
    if role != "service_role":
        what = f"a key of role {role!r}" if role else "not a Supabase API key"
        raise MirrorKeyError(f"Supabase mirror: SUPABASE_KEY is {what}, not the project's service_role key: set it "
                             "to the service_role (secret) key from the Dashboard -> Project Settings -> API.")


def _transient(status: int | None) -> bool:
    return status is None or status >= 500 or status in (408, 429)


class SupabaseRemote:
    """The mirror's tables in one Supabase project; counts every HTTP request it makes (retries included)."""

    def __init__(self, url: str, key: str, *, timeout_seconds: float, max_attempts: int,
                 backoff_seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx
        from supabase import ClientOptions, create_client

        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.requests = 0
        self.retries = 0
        self._sleep = sleep
        self._key = key
        self._last_status: int | None = None
        self._http = httpx.Client(timeout=timeout_seconds, http2=False,
                                  event_hooks={"request": [self._count], "response": [self._note_status]})
        self._client = create_client(url, key, options=ClientOptions(httpx_client=self._http))
        self._rpc_url = f"{url.rstrip('/')}/rest/v1/rpc"
        self._rpc_headers = {"apikey": key, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    @classmethod
    def from_config(cls, config: MirrorConfig) -> SupabaseRemote:
        return cls(config.url, config.key, timeout_seconds=config.timeout_seconds,
                   max_attempts=config.max_attempts, backoff_seconds=config.backoff_seconds)

    def close(self) -> None:
        self._http.close()

    def _count(self, request: httpx.Request) -> None:
        self.requests += 1

    def _note_status(self, response: httpx.Response) -> None:
        self._last_status = response.status_code

    def check_key(self) -> None:
        """No request: refuses a key that is not the service_role's (see `refuse_unless_service_role`)."""
        refuse_unless_service_role(self._key)

    def check_tables(self, tables: Iterable[MirroredTable]) -> None:
        """One empty select per table naming every mirrored column, so a missing table or column is reported
        before any row is sent."""
        for table in tables:
            self._call(f"checking table {table.name}",
                       self._client.table(table.name).select(table.select_list).limit(0).retry(False).execute)

    def upsert(self, table: MirroredTable, rows: list[str], *, force: bool = False) -> int:
        """One request: insert or merge `rows` (each the JSON text of a row with its `mirror_stamp`) on their key.
        An existing row is replaced only by one with the same or a newer stamp, unless `force`. Returns the rows
        written. The body is assembled from the catalog's own JSON text: parsing it into Python objects only to
        serialise it again was a third of a full mirror's time."""
        head = json.dumps({"p_table": table.name, "p_columns": list(table.columns), "p_force": force})
        body = f'{head[:-1]}, "p_rows": [{",".join(rows)}]}}'.encode()
        written = self._call(f"upserting {len(rows)} rows into {table.name}",
                             lambda: self._post_rpc("mirror_upsert", body))
        return int(written)

    def delete(self, table: MirroredTable, keys: list[str]) -> set[str]:
        """One request, the keys in its body: delete these rows; returns the keys the remote still has."""
        remaining = self._rpc(f"deleting {len(keys)} rows from {table.name}", "mirror_delete",
                              {"p_table": table.name, "p_keys": keys})
        return set(remaining or [])

    def checksums(self, table: MirroredTable, bucket_size: int) -> dict[int, tuple[int, str]]:
        """One request: {key range: (rows, checksum)} for the whole remote table."""
        answer = self._rpc(f"checking {table.name}", "mirror_checksums",
                           {"p_table": table.name, "p_columns": list(table.columns), "p_bucket_size": bucket_size})
        return {int(bucket): (int(n), checksum) for bucket, (n, checksum) in answer.items()}

    def row_hashes(self, table: MirroredTable, bucket_size: int, buckets: list[int]) -> dict[str, str]:
        """One request: {key: row hash} of the remote rows in `buckets`."""
        answer = self._rpc(f"comparing {table.name} rows", "mirror_row_hashes",
                           {"p_table": table.name, "p_columns": list(table.columns), "p_bucket_size": bucket_size,
                            "p_buckets": buckets})
        return dict(answer)

    def _rpc(self, what: str, function: str, params: dict[str, Any]) -> Any:
        return self._call(what, self._client.rpc(function, params).retry(False).execute).data

    def _post_rpc(self, function: str, body: bytes) -> Any:
        """A function call with a ready JSON body; PostgREST's errors raised as supabase-py raises them."""
        from postgrest import APIError

        answer = self._http.post(f"{self._rpc_url}/{function}", content=body, headers=self._rpc_headers)
        if answer.is_success:
            return answer.json()
        try:
            error = answer.json()
        except ValueError:
            error = None
        raise APIError(error if isinstance(error, dict) else {"message": answer.text or answer.reason_phrase})

    def _call(self, what: str, execute: Callable[[], Any]) -> Any:
        """Run one request, retrying transient failures with exponential backoff."""
        import httpx
        from postgrest import APIError

        for attempt in range(1, self.max_attempts + 1):
            self._last_status = None
            try:
                return execute()
            except httpx.TransportError as error:  # connection refused or reset, timeouts
                problem = f"{type(error).__name__}: {error or 'no answer'}"
            except APIError as error:
                status = self._last_status
                if not _transient(status):
                    raise self._refused(what, status, error) from error
                problem = f"HTTP {status}: {error.message or error.details}"
            if attempt == self.max_attempts:
                raise MirrorError(f"Supabase mirror: {what} failed {attempt} times; last error: {problem}")
            pause = min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            log.warning("Supabase mirror: %s failed (%s); attempt %d of %d in %.1f s", what, problem, attempt + 1,
                        self.max_attempts, pause)
            self.retries += 1
            self._sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _refused(what: str, status: int | None, error: APIError) -> MirrorError:
        said = f"HTTP {status} {error.code or ''} {error.message or ''}".strip()
        if error.code in SCHEMA_ERROR_CODES or status == 404:
            return MirrorSchemaError(f"Supabase mirror: the project lacks the mirror's tables, columns or "
                                     f"functions while {what} ({said}): {APPLY_MIGRATIONS}.", error.code)
        if status in (401, 403):
            return MirrorKeyError(f"Supabase mirror: the project refused SUPABASE_KEY while {what} ({said}): set "
                                  "SUPABASE_KEY to the project's service_role (secret) key.", error.code)
        return MirrorError(f"Supabase mirror: {what} was refused ({said}).", error.code)
