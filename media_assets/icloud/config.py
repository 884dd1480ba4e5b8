"""The iCloud settings (ICLOUD_*), parsed from `Settings.raw` and validated like every other setting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from media_assets.settings import Settings, SettingsError, parse_bool, parse_int

DEFAULTS = {
    "ICLOUD_CONCURRENCY": "4",
    "ICLOUD_REQUESTS_PER_SECOND": "10",
    "ICLOUD_MAX_RETRIES": "5",
    "ICLOUD_BACKOFF_MS": "500",
    "ICLOUD_2FA_TIMEOUT_SECONDS": "600",
    "ICLOUD_2FA_MAX_ATTEMPTS": "3",
    "ICLOUD_TRUST_DAYS": "30",
    "ICLOUD_TRUST_WARN_DAYS": "5",
    "ICLOUD_STOP_AFTER_KNOWN": "50",
    "ICLOUD_FULL_SCAN_DAYS": "7",
    "ICLOUD_UPLOAD_FORMATS": "jpeg",
    "ICLOUD_REPLACE_ORIGINALS": "false",
    "ICLOUD_INDEX_WAIT_SECONDS": "60",
    "ICLOUD_VERIFY_SAMPLE": "2",
}


@dataclass(frozen=True)
class ICloudConfig:
    """One Apple account and how the pipeline talks to it."""

    username: str
    password: str = field(repr=False)
    #: Session and trust tokens (secrets): DATA_DIR/icloud-session/<account>, owner-only.
    cookie_dir: Path
    #: Where downloads are streamed before the download phase takes them (ICLOUD_DOWNLOAD_DIR).
    transfer_dir: Path
    #: Only for a local stand-in: the one HTTPS host that replaces Apple's (ICLOUD_ENDPOINT, ICLOUD_CA_BUNDLE).
    endpoint: str | None = None
    ca_bundle: str | None = None
    concurrency: int = 4
    requests_per_second: float = 10.0
    max_retries: int = 5
    backoff_seconds: float = 0.5
    code_timeout_seconds: int = 600
    code_attempts: int = 3
    trust_days: int = 30
    trust_warn_days: int = 5
    stop_after_known: int = 50
    full_scan_days: int = 7
    upload_formats: frozenset[str] = frozenset({"jpeg"})
    replace_originals: bool = False
    index_wait_seconds: int = 60
    #: Uploads of each batch whose bytes verification downloads back and compares (ICLOUD_VERIFY_SAMPLE).
    verify_sample: int = 2


def _account_folder(username: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", username) or "account"


def icloud_config(settings: Settings, *, role: str = "source") -> ICloudConfig:
    """The source account (ICLOUD_USERNAME/ICLOUD_PASSWORD), or for role="destination" the upload account
    (ICLOUD_UPLOAD_USERNAME/ICLOUD_UPLOAD_PASSWORD), which defaults to the same account."""
    raw = {**DEFAULTS, **{k: v for k, v in settings.raw.items() if v is not None and v.strip() != ""}}
    username, password = settings.icloud_username, settings.icloud_password
    if role == "destination" and raw.get("ICLOUD_UPLOAD_USERNAME", "").strip():
        username = raw["ICLOUD_UPLOAD_USERNAME"].strip()
        password = raw.get("ICLOUD_UPLOAD_PASSWORD", "")
    if not username:
        raise SettingsError("ICLOUD_USERNAME must name the Apple ID when iCloud download or upload is on.")
    endpoint = raw.get("ICLOUD_ENDPOINT", "").strip().rstrip("/") or None
    if endpoint is not None and not endpoint.startswith("https://"):
        raise SettingsError(f"ICLOUD_ENDPOINT must be an https:// address, not {endpoint!r}.")
    rate = parse_int("ICLOUD_REQUESTS_PER_SECOND", raw["ICLOUD_REQUESTS_PER_SECOND"], minimum=1)
    formats = frozenset(f.strip().lower() for f in re.split(r"[,\s]+", raw["ICLOUD_UPLOAD_FORMATS"]) if f.strip())
    return ICloudConfig(
        username=username,
        password=password,
        cookie_dir=settings.data_dir / "icloud-session" / _account_folder(username),
        transfer_dir=settings.icloud_download_dir,
        endpoint=endpoint,
        ca_bundle=raw.get("ICLOUD_CA_BUNDLE", "").strip() or None,
        concurrency=parse_int("ICLOUD_CONCURRENCY", raw["ICLOUD_CONCURRENCY"], minimum=1),
        requests_per_second=float(rate),
        max_retries=parse_int("ICLOUD_MAX_RETRIES", raw["ICLOUD_MAX_RETRIES"], minimum=1),
        backoff_seconds=parse_int("ICLOUD_BACKOFF_MS", raw["ICLOUD_BACKOFF_MS"], minimum=0) / 1000,
        code_timeout_seconds=parse_int("ICLOUD_2FA_TIMEOUT_SECONDS", raw["ICLOUD_2FA_TIMEOUT_SECONDS"], minimum=1),
        code_attempts=parse_int("ICLOUD_2FA_MAX_ATTEMPTS", raw["ICLOUD_2FA_MAX_ATTEMPTS"], minimum=1),
        trust_days=parse_int("ICLOUD_TRUST_DAYS", raw["ICLOUD_TRUST_DAYS"], minimum=1),
        trust_warn_days=parse_int("ICLOUD_TRUST_WARN_DAYS", raw["ICLOUD_TRUST_WARN_DAYS"], minimum=0),
        stop_after_known=parse_int("ICLOUD_STOP_AFTER_KNOWN", raw["ICLOUD_STOP_AFTER_KNOWN"], minimum=1),
        full_scan_days=parse_int("ICLOUD_FULL_SCAN_DAYS", raw["ICLOUD_FULL_SCAN_DAYS"], minimum=1),
        upload_formats=formats,
        replace_originals=parse_bool("ICLOUD_REPLACE_ORIGINALS", raw["ICLOUD_REPLACE_ORIGINALS"]),
        index_wait_seconds=parse_int("ICLOUD_INDEX_WAIT_SECONDS", raw["ICLOUD_INDEX_WAIT_SECONDS"], minimum=0),
        verify_sample=parse_int("ICLOUD_VERIFY_SAMPLE", raw["ICLOUD_VERIFY_SAMPLE"], minimum=0),
    )
