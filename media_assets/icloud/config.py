"""What the iCloud code needs for one account, as a view of the checked settings (`settings.icloud`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from media_assets.settings import Settings, SettingsError


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
    icloud = settings.icloud
    username, password = icloud.username, icloud.password
    if role == "destination" and icloud.upload_username:
        username, password = icloud.upload_username, icloud.upload_password
    if not username:
        raise SettingsError("ICLOUD_USERNAME must name the Apple ID when iCloud download or upload is on.")
    return ICloudConfig(
        username=username,
        password=password,
        cookie_dir=settings.storage.data_dir / "icloud-session" / _account_folder(username),
        transfer_dir=icloud.download_dir,
        endpoint=icloud.endpoint or None,
        ca_bundle=icloud.ca_bundle or None,
        concurrency=icloud.concurrency,
        requests_per_second=float(icloud.requests_per_second),
        max_retries=icloud.max_retries,
        backoff_seconds=icloud.backoff_ms / 1000,
        code_timeout_seconds=icloud.code_timeout_seconds,
        code_attempts=icloud.code_attempts,
        trust_days=icloud.trust_days,
        trust_warn_days=icloud.trust_warn_days,
        stop_after_known=icloud.stop_after_known,
        full_scan_days=icloud.full_scan_days,
        upload_formats=icloud.upload_formats,
        replace_originals=icloud.replace_originals,
        index_wait_seconds=icloud.index_wait_seconds,
        verify_sample=icloud.verify_sample,
    )
