"""The remote side of the mirror: supabase-py against the project's REST API, with our own retries.

supabase-py retries only GET/HEAD and never timeouts, while upserts on a primary key are idempotent, so every
request here goes through one retry loop with exponential backoff for 5xx answers, timeouts and connection
errors. 4xx answers are not retried: they need a person (a wrong key, a missing table)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from postgrest import APIError
from postgrest.types import ReturnMethod
from supabase import ClientOptions, create_client

from media_assets.mirror.config import MirrorConfig
from media_assets.mirror.tables import MirroredTable

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0
#: Error codes for a table or column PostgREST does not know (PostgREST 12 and newer, and PostgreSQL's own).
SCHEMA_ERROR_CODES = frozenset({"PGRST205", "PGRST204", "42P01", "42703"})
APPLY_MIGRATIONS = ("apply supabase/migrations/*.sql to the Supabase project (Dashboard -> SQL Editor -> run the "
                    "file, or `supabase db push`), then let the sync run again")


class MirrorError(RuntimeError):
    """Supabase refused the request, or did not answer after every attempt; nothing was marked as mirrored."""


class MirrorSchemaError(MirrorError):
    """The Supabase project lacks the mirror's tables or columns."""


def _transient(status: int | None) -> bool:
    return status is None or status >= 500 or status in (408, 429)


class SupabaseRemote:
    """The mirror's tables in one Supabase project; counts every HTTP request it makes (retries included)."""

    def __init__(self, url: str, key: str, *, timeout_seconds: float, max_attempts: int,
                 backoff_seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.requests = 0
        self.retries = 0
        self._sleep = sleep
        self._last_status: int | None = None
        self._http = httpx.Client(timeout=timeout_seconds, http2=False,
                                  event_hooks={"request": [self._count], "response": [self._note_status]})
        self._client = create_client(url, key, options=ClientOptions(httpx_client=self._http))

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

    def check_tables(self, tables: Iterable[MirroredTable]) -> None:
        """One empty select per table naming every mirrored column, so a missing table or column is reported
        before any row is sent."""
        for table in tables:
            self._call(f"checking table {table.name}",
                       self._client.table(table.name).select(table.select_list).limit(0).retry(False).execute)

    def upsert(self, table: MirroredTable, rows: list[dict[str, Any]]) -> None:
        """One request: insert or merge `rows` on their primary key, without rows coming back."""
        self._call(f"upserting {len(rows)} rows into {table.name}",
                   self._client.table(table.name).upsert(rows, on_conflict="id", returning=ReturnMethod.minimal)
                   .retry(False).execute)

    def delete(self, table: MirroredTable, keys: list[str]) -> None:
        self._call(f"deleting {len(keys)} rows from {table.name}",
                   self._client.table(table.name).delete(returning=ReturnMethod.minimal).in_("id", keys)
                   .retry(False).execute)

    def _call(self, what: str, execute: Callable[[], object]) -> None:
        """Run one request, retrying transient failures with exponential backoff."""
        for attempt in range(1, self.max_attempts + 1):
            self._last_status = None
            try:
                execute()
                return
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

    @staticmethod
    def _refused(what: str, status: int | None, error: APIError) -> MirrorError:
        said = f"HTTP {status} {error.code or ''} {error.message or ''}".strip()
        if error.code in SCHEMA_ERROR_CODES or status == 404:
            return MirrorSchemaError(f"Supabase mirror: the project lacks the mirror's tables or columns while "
                                     f"{what} ({said}): {APPLY_MIGRATIONS}.")
        if status in (401, 403):
            return MirrorError(f"Supabase mirror: the project refused SUPABASE_KEY while {what} ({said}): set "
                               "SUPABASE_KEY to the project's service_role (secret) key.")
        return MirrorError(f"Supabase mirror: {what} was refused ({said}).")
