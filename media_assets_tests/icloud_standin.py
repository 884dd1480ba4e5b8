"""A local HTTPS stand-in of the iCloud web services, driven by the real pyicloud through an endpoint override.

One host answers the auth (`/appleauth/auth/...`), setup (`/setup/ws/1/...`), CloudKit Photos, download and
`photosupload` requests the way /work/shared/reference/icloud-web-protocol.md describes, over a library of real
media bytes. The password is checked by real SRP-6a, as Apple does (a wrong one, or an unknown account, is
answered 401 on `signin/complete`). Tests inject faults: added latency, a rate limit
answered with 429 (and counted), one-off status codes on a path, expired download URLs (410), a download cut
off half way, an indexing delay after uploads, and lapsed trust."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import srp
import trustme
from srp import _pysrp

CLOUDKIT = "/database/1/com.apple.photos.cloud/production/private"
UTI = {".jpg": "public.jpeg", ".jpeg": "public.jpeg", ".heic": "public.heic", ".png": "public.png",
       ".mov": "com.apple.quicktime-movie", ".mp4": "public.mpeg-4"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha256_checksum(data: bytes) -> str:
    """The stand-in's `fileChecksum`: base64 of the SHA-256 (Apple's own format is not reproducible)."""
    return _b64(hashlib.sha256(data).digest())


@dataclass
class StandInAsset:
    asset_id: str
    master_id: str
    filename: str
    data: bytes
    added_ms: int
    asset_ms: int
    live_video: bytes | None = None
    deleted: bool = False
    indexed_at: float = 0.0
    #: The time zone of `asset_ms` (CPLAsset `timeZoneOffset`, seconds east of UTC); None: Apple recorded none.
    time_zone_seconds: int | None = None
    #: More CPLAsset fields as Apple sends them (burstId, adjustmentType, isFavorite, ...).
    fields: dict[str, Any] = field(default_factory=dict)
    #: Bytes served instead of `data` while the record keeps data's checksum (damage on Apple's side).
    served: bytes | None = None


@dataclass
class _Fault:
    path: str
    status: int
    times: int
    body: dict[str, Any] | None = None
    retry_after: str | None = None


@dataclass
class ICloudStandIn:
    #: Apple ID -> password; a sign-in with any other account or password is refused.
    passwords: dict[str, str] = field(default_factory=dict)
    code: str = "123456"
    dsid: str = "20000001"
    latency: float = 0.0
    #: Requests per second above which the stand-in answers 429 (0 = no limit).
    rate_limit: float = 0.0
    index_delay: float = 0.0
    assets: list[StandInAsset] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    codes_sent: int = 0
    codes_checked: list[str] = field(default_factory=list)
    throttled: int = 0
    deletes: list[str] = field(default_factory=list)
    #: Every asset uploaded from now on is served with one byte flipped (see `corrupt`).
    corrupt_uploads: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._recent: deque[float] = deque()
        self._trust_tokens: set[str] = set()
        self._handshakes: dict[str, tuple[Any, str]] = {}  # SRP `c` -> (verifier, account)
        self.password_failures = 0
        self._session_tokens: set[str] = set()
        self._web_tokens: set[str] = set()
        self._url_tokens: dict[str, float] = {}  # download token -> expiry
        self._uploads: dict[str, bytes] = {}
        self._cut_next_download = 0
        self._next_id = 0
        self.ca = trustme.CA()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> ICloudStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else a delayed ACK adds ~40 ms to each answer on top of `latency`

            def do_GET(self) -> None:  # the stdlib's name
                standin._dispatch(self, "GET")

            def do_POST(self) -> None:
                standin._dispatch(self, "POST")

            def do_PUT(self) -> None:
                standin._dispatch(self, "PUT")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def write_ca(self, folder: Path) -> Path:
        path = folder / "standin-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path

    # -- the library ----------------------------------------------------------------------------------------

    def add_asset(self, filename: str, data: bytes, *, live_video: bytes | None = None,
                  added_ms: int | None = None, asset_ms: int = 1_700_000_000_000,
                  time_zone_seconds: int | None = None, fields: dict[str, Any] | None = None) -> StandInAsset:
        """Add an asset; each new one is added after the previous ones unless `added_ms` says otherwise."""
        with self._lock:
            self._next_id += 1
            n = self._next_id
            asset = StandInAsset(asset_id=f"ASSET-{n:06d}", master_id=f"MASTER-{n:06d}", filename=filename, data=data,
                                 added_ms=added_ms if added_ms is not None else 1_700_000_000_000 + n * 1000,
                                 asset_ms=asset_ms, live_video=live_video, time_zone_seconds=time_zone_seconds,
                                 fields=dict(fields or {}))
            self.assets.append(asset)
            return asset

    def live_assets(self) -> list[StandInAsset]:
        """Listed assets, newest added first (rank 0)."""
        now = time.time()
        shown = [a for a in self.assets if not a.deleted and a.indexed_at <= now]
        return sorted(shown, key=lambda a: (-a.added_ms, a.asset_id))

    def asset(self, asset_id: str) -> StandInAsset:
        return next(a for a in self.assets if a.asset_id == asset_id)

    # -- fault injection --------------------------------------------------------------------------------------

    def fail_next(self, path: str, status: int, times: int = 1, body: dict[str, Any] | None = None,
                  retry_after: str | None = None) -> None:
        """Answer the next `times` requests whose path contains `path` with `status` (and a Retry-After header);
        status 0 drops the connection without an answer."""
        with self._lock:
            self._faults.append(_Fault(path, status, times, body, retry_after))

    def expire_download_urls(self) -> None:
        with self._lock:
            for token in self._url_tokens:
                self._url_tokens[token] = 0

    def cut_next_downloads(self, count: int = 1) -> None:
        """The next `count` downloads send half their bytes, then the connection drops."""
        self._cut_next_download = count

    def lapse_trust(self) -> None:
        """Apple forgets the trusted browser and every session (what happens about 30 days after a code)."""
        with self._lock:
            self._trust_tokens.clear()
            self._session_tokens.clear()
            self._web_tokens.clear()

    def corrupt(self, asset: StandInAsset) -> None:
        """Serve the asset's original with one byte flipped, its record (and checksum) unchanged."""
        middle = len(asset.data) // 2
        asset.served = asset.data[:middle] + bytes([asset.data[middle] ^ 0xFF]) + asset.data[middle + 1:]

    def count(self, fragment: str) -> int:
        return sum(1 for path in self.requests if fragment in path)

    # -- dispatch -------------------------------------------------------------------------------------------

    def _dispatch(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path = parts.path
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if self.latency:
            time.sleep(self.latency)
        with self._lock:
            self.requests.append(f"{method} {path}")
            fault = next((f for f in self._faults if f.path in path and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
            limited = self._over_rate_limit()
        if limited:
            self.throttled += 1
            self._send(request, 429, {"serverErrorCode": "THROTTLED"}, headers={"Retry-After": "1"})
            return
        if fault is not None and fault.status == 0:
            request.close_connection = True
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None:
            self._send(request, fault.status, fault.body if fault.body is not None else
                       {"errorCode": fault.status, "reason": "injected"} if fault.status != 503 else None,
                       headers={"Retry-After": fault.retry_after} if fault.retry_after else None)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(request, method, path, parse_qs(parts.query), body)

    def _over_rate_limit(self) -> bool:
        if not self.rate_limit:
            return False
        now = time.monotonic()
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _route(self, request: BaseHTTPRequestHandler, method: str, path: str, query: dict[str, list[str]],
               body: bytes) -> None:
        payload = json.loads(body) if body and body[:1] in (b"{", b"[") else {}
        auth = "/appleauth/auth"
        if path.startswith("/content/"):
            self._download(request, path, query)
        elif path.startswith("/upload/"):
            self._receive_upload(request, path, body)
        elif path == f"{auth}/authorize/signin":
            self._send(request, 200, None)
        elif path == f"{auth}/signin/init":
            self._signin_init(request, payload)
        elif path == f"{auth}/signin/complete":
            self._signin_complete(request, payload)
        elif path == auth:
            self._send(request, 200, {"mode": "sms", "trustedPhoneNumber": {"id": 1, "pushMode": "sms",
                                                                            "nonFTEU": False}})
        elif path == f"{auth}/verify/phone" and method == "PUT":
            self.codes_sent += 1
            self._send(request, 200, {})
        elif path in (f"{auth}/verify/phone/securitycode", f"{auth}/verify/trusteddevice/securitycode"):
            code = str(payload.get("securityCode", {}).get("code", ""))
            self.codes_checked.append(code)
            if code == self.code:
                self._send(request, 200, {})
            else:
                self._send(request, 400, {"service_errors": [{"code": "-21669", "message": "Incorrect code"}],
                                          "hasError": True})
        elif path == f"{auth}/2sv/trust":
            session, trust = secrets.token_hex(8), secrets.token_hex(8)
            with self._lock:
                self._session_tokens.add(session)
                self._trust_tokens.add(trust)
            self._send(request, 204, None, headers={"X-Apple-Session-Token": session,
                                                    "X-Apple-TwoSV-Trust-Token": trust})
        elif path == "/setup/ws/1/accountLogin":
            self._account_login(request, payload)
        elif path == "/setup/ws/1/validate":
            token = self._cookie(request, "X-APPLE-WEBAUTH-TOKEN")
            if token not in self._web_tokens:
                self._send(request, 421, {"error": "Missing X-APPLE-WEBAUTH-TOKEN cookie"})
            else:
                self._send(request, 200, self._login_data(trusted=True))
        elif path == "/setup/ws/1/requestWebAccessState":
            self._send(request, 200, {"isICDRSDisabled": False, "isDeviceConsentedForPCS": True})
        elif path.startswith(CLOUDKIT) or "/production/shared/" in path:
            self._cloudkit(request, path, payload)
        elif path == "/photosupload/createUploadUrl":
            urls = {uuid: f"{self.base_url}/upload/{secrets.token_hex(8)}?size={size}"
                    for uuid, size in payload.get("assets", {}).items()}
            self._send(request, 200, {"uploadUrls": urls})
        elif path == "/photosupload/putAsset":
            self._put_asset(request, payload)
        elif path == "/photosupload/uploadStatus":
            self._send(request, 200, {job: {"progress": 100} for job in payload.get("uploadJobIds", [])})
        else:
            self._send(request, 404, {"error": f"no route {method} {path}"})

    # -- auth -------------------------------------------------------------------------------------------------

    def _signin_init(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        """The server half of Apple's SRP-6a: the password key is PBKDF2-SHA256 of SHA-256(password) with the
        salt, and the username is left out of x. An unknown account gets a challenge that cannot be met."""
        account, salt, iterations = payload.get("accountName", ""), os.urandom(16), 1000
        handshake = secrets.token_hex(8)
        password = self.passwords.get(account)
        challenge = os.urandom(256)
        if password is not None:
            srp.rfc5054_enable()
            srp.no_username_in_x()
            key = hashlib.pbkdf2_hmac("sha256", hashlib.sha256(password.encode()).digest(), salt, iterations, 32)
            n, g = _pysrp.get_ng(_pysrp.NG_2048, None, None)
            # x hashes the salt as the srp library's client does: as a number, so without leading zero bytes
            # (hashing the raw salt failed about one sign-in in 256).
            x_input = salt.lstrip(b"\0") + hashlib.sha256(b":" + key).digest()
            x = int.from_bytes(hashlib.sha256(x_input).digest(), "big")
            verifier = srp.Verifier(account, salt, _pysrp.long_to_bytes(pow(g, x, n)),
                                    base64.b64decode(payload.get("a", "")), hash_alg=srp.SHA256, ng_type=srp.NG_2048)
            _salt, challenge = verifier.get_challenge()
            if challenge is not None:
                with self._lock:
                    self._handshakes[handshake] = (verifier, account)
        self._send(request, 200, {"salt": _b64(salt), "b": _b64(challenge or os.urandom(256)), "c": handshake,
                                  "iteration": iterations, "protocol": "s2k"},
                   headers={"scnt": "scnt-1", "X-Apple-ID-Session-Id": "sid-1"})

    def _password_proven(self, payload: dict[str, Any]) -> bool:
        with self._lock:
            verifier, account = self._handshakes.pop(str(payload.get("c")), (None, None))
        if verifier is None or account != payload.get("accountName"):
            return False
        proof = verifier.verify_session(base64.b64decode(payload.get("m1", "")))
        return proof is not None and proof == base64.b64decode(payload.get("m2", ""))

    def _signin_complete(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        if not self._password_proven(payload):
            self.password_failures += 1
            self._send(request, 401, {"serviceErrors": [{"code": "-20101", "message":
                                                         "Your Apple ID or password was incorrect."}]})
            return
        session = secrets.token_hex(8)
        with self._lock:
            self._session_tokens.add(session)
            trusted = any(t in self._trust_tokens for t in payload.get("trustTokens") or [])
        headers = {"X-Apple-Session-Token": session, "scnt": "scnt-2", "X-Apple-ID-Session-Id": "sid-2"}
        if trusted:
            self._send(request, 200, {"authType": "hsa2"}, headers=headers)
        else:
            self._send(request, 409, {"authType": "hsa2"}, headers=headers)

    def _login_data(self, *, trusted: bool) -> dict[str, Any]:
        return {"dsInfo": {"dsid": self.dsid, "hsaVersion": 2, "languageCode": "en_US"},
                "hsaTrustedBrowser": trusted, "hsaChallengeRequired": not trusted,
                "webservices": {"ckdatabasews": {"url": self.base_url, "status": "active"},
                                "photosupload": {"url": self.base_url, "status": "active"}}}

    def _account_login(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        if payload.get("dsWebAuthToken") not in self._session_tokens:
            self._send(request, 421, {"error": "Invalid session token"})
            return
        trusted = payload.get("trustToken") in self._trust_tokens
        web = secrets.token_hex(8)
        with self._lock:
            self._web_tokens.add(web)
        self._send(request, 200, self._login_data(trusted=trusted),
                   headers={"Set-Cookie": f"X-APPLE-WEBAUTH-TOKEN={web}; Path=/; Secure"})

    @staticmethod
    def _cookie(request: BaseHTTPRequestHandler, name: str) -> str | None:
        for part in (request.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value.strip('"')
        return None

    # -- CloudKit ------------------------------------------------------------------------------------------------

    def _cloudkit(self, request: BaseHTTPRequestHandler, path: str, payload: dict[str, Any]) -> None:
        if self._cookie(request, "X-APPLE-WEBAUTH-TOKEN") not in self._web_tokens:
            self._send(request, 401, {"serverErrorCode": "AUTHENTICATION_REQUIRED"})
            return
        op = path.rsplit("/production/", 1)[1].split("/", 1)[1]
        if op == "zones/list":
            zones = [] if "/shared/" in path else [{"zoneID": {"zoneName": "PrimarySync"}, "syncToken": "sync-1"}]
            self._send(request, 200, {"zones": zones})
        elif op == "records/query":
            self._query(request, payload)
        elif op == "records/lookup":
            self._lookup(request, [r["recordName"] for r in payload.get("records", [])])
        elif op == "records/modify":
            self._modify(request, payload)
        else:
            self._send(request, 404, {"error": op})

    def _query(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        query = payload.get("query", {})
        record_type = query.get("recordType")
        filters = {f["fieldName"]: f["fieldValue"]["value"] for f in query.get("filterBy") or []}
        if record_type == "CheckIndexingState":
            self._send(request, 200, {"records": [{"recordName": "_", "recordType": "CheckIndexingState",
                                                   "fields": {"state": {"type": "STRING", "value": "FINISHED"}}}],
                                      "syncToken": "sync-1"})
            return
        if record_type != "CPLAssetAndMasterByAddedDate" or filters.get("direction") != "DESCENDING":
            self._send(request, 400, {"serverErrorCode": "BAD_REQUEST", "reason": f"unsupported {record_type}"})
            return
        listed = self.live_assets()
        rank, count = int(filters.get("startRank", 0)), max(1, int(payload.get("resultsLimit", 2)) // 2)
        window = [listed[k] for k in range(rank, rank - count, -1) if 0 <= k < len(listed)]
        records = [record for asset in window for record in self._records(asset)]
        self._send(request, 200, {"records": records, "syncToken": "sync-1"})

    def _lookup(self, request: BaseHTTPRequestHandler, names: list[str]) -> None:
        now = time.time()
        records: list[dict[str, Any]] = []
        for name in names:
            asset = next((a for a in self.assets if name in (a.asset_id, a.master_id)), None)
            if asset is None or asset.indexed_at > now:
                records.append({"recordName": name, "serverErrorCode": "NOT_FOUND", "reason": "Record not found"})
                continue
            master, cpl_asset = self._records(asset)
            records.append(master if name == asset.master_id else cpl_asset)
        self._send(request, 200, {"records": records})

    def _modify(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        records = []
        for operation in payload.get("operations", []):
            record = operation["record"]
            asset = next((a for a in self.assets if a.asset_id == record["recordName"]), None)
            if asset is None:
                records.append({"recordName": record["recordName"], "serverErrorCode": "NOT_FOUND"})
                continue
            if record.get("fields", {}).get("isDeleted", {}).get("value") == 1:
                asset.deleted = True
                self.deletes.append(asset.asset_id)
            records.append(self._records(asset)[1])
        self._send(request, 200, {"records": records})

    def _url(self, asset: StandInAsset, kind: str) -> str:
        token = secrets.token_hex(8)
        with self._lock:
            self._url_tokens[token] = time.time() + 3600
        return f"{self.base_url}/content/{asset.asset_id}/{kind}?token={token}"

    def _records(self, asset: StandInAsset) -> list[dict[str, Any]]:
        suffix = Path(asset.filename).suffix.lower()
        fields: dict[str, Any] = {
            "filenameEnc": {"type": "STRING", "value": _b64(asset.filename.encode())},
            "itemType": {"type": "STRING", "value": UTI.get(suffix, "public.jpeg")},
            "resOriginalFileType": {"type": "STRING", "value": UTI.get(suffix, "public.jpeg")},
            "resOriginalRes": {"type": "ASSETID", "value": {"downloadURL": self._url(asset, "original"),
                                                            "size": len(asset.data),
                                                            "fileChecksum": sha256_checksum(asset.data)}},
        }
        if asset.live_video is not None:
            fields["resOriginalVidComplFileType"] = {"type": "STRING", "value": "com.apple.quicktime-movie"}
            fields["resOriginalVidComplRes"] = {"type": "ASSETID", "value": {
                "downloadURL": self._url(asset, "live"), "size": len(asset.live_video),
                "fileChecksum": sha256_checksum(asset.live_video)}}
        zone = {"zoneName": "PrimarySync"}
        master = {"recordName": asset.master_id, "recordType": "CPLMaster", "recordChangeTag": "m1",
                  "fields": fields, "zoneID": zone}
        cpl_asset: dict[str, Any]
        cpl_asset = {"recordName": asset.asset_id, "recordType": "CPLAsset", "recordChangeTag": "a1", "zoneID": zone,
                     "fields": {"masterRef": {"type": "REFERENCE", "value": {"recordName": asset.master_id,
                                                                             "action": "DELETE_SELF"}},
                                "assetDate": {"type": "TIMESTAMP", "value": asset.asset_ms},
                                "addedDate": {"type": "TIMESTAMP", "value": asset.added_ms},
                                "isDeleted": {"type": "INT64", "value": int(asset.deleted)}}}
        if asset.time_zone_seconds is not None:
            cpl_asset["fields"]["timeZoneOffset"] = {"type": "INT64", "value": asset.time_zone_seconds}
        for name, value in asset.fields.items():
            cpl_asset["fields"][name] = {"type": "INT64" if isinstance(value, int) else "STRING", "value": value}
        return [master, cpl_asset]

    # -- bytes ---------------------------------------------------------------------------------------------------

    def _download(self, request: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        _, _, asset_id, kind = path.split("/")
        token = query.get("token", [""])[0]
        if self._url_tokens.get(token, 0) < time.time():
            self._send(request, 410, None)
            return
        asset = self.asset(asset_id)
        data = asset.live_video if kind == "live" else asset.served or asset.data
        assert data is not None
        cut = self._cut_next_download > 0
        if cut:
            self._cut_next_download -= 1
        request.send_response(200)
        request.send_header("Content-Type", "application/octet-stream")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data[: len(data) // 2] if cut else data)
        if cut:
            request.close_connection = True

    def _receive_upload(self, request: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        slot = path.rsplit("/", 1)[1]
        with self._lock:
            self._uploads[slot] = body
        self._send(request, 200, {"singleFile": {"fileChecksum": sha256_checksum(body), "size": len(body),
                                                 "receipt": slot, "referenceChecksum": "ref"}})

    def _put_asset(self, request: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        results = []
        for entry in payload.get("files", []):
            receipt = entry["singleFileUploadRequest"]
            data = self._uploads.pop(receipt["receipt"])
            existing = next((a for a in self.assets if not a.deleted and a.data == data), None)
            if existing is not None:
                results.append({"cplMaster": existing.master_id, "cplAsset": existing.asset_id,
                                "response": {"status": 409, "errorMessage": "duplicate asset"}})
                continue
            # The asset's date is the upload's lastModDate, in the zone of its timeZoneOffset (minutes west of
            # UTC, JavaScript's getTimezoneOffset), as Apple files a photo without a date of its own.
            asset = self.add_asset(entry["fileName"], data, added_ms=int(time.time() * 1000),
                                   asset_ms=int(entry["lastModDate"]),
                                   time_zone_seconds=-60 * int(entry["timeZoneOffset"]))
            asset.indexed_at = time.time() + self.index_delay
            if self.corrupt_uploads:
                self.corrupt(asset)
            results.append({"uploadJobId": f"job-{asset.asset_id}", "cplMaster": asset.master_id,
                            "cplAsset": asset.asset_id, "response": {"status": 200, "isRetryable": False}})
        self._send(request, 200, results)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None
              ) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        request.send_response(status)
        if body is not None:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(raw)


