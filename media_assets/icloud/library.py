"""The Photos library through pyicloud: the recently-added walk with its stop rule, the files of an asset (a Live
Photo's still and video), streamed downloads with an expired-URL refresh, uploads, lookups and soft deletes."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import requests
from pyicloud.common.cloudkit import CKZoneIDReq
from pyicloud.exceptions import PyiCloudEndpointGoneException
from pyicloud.services.photos import PRIMARY_ZONE, PhotoAsset
from pyicloud.services.photos_cloudkit.models import PhotosPutAssetFile, PhotosPutAssetResult
from pyicloud.services.photos_cloudkit.service import PHOTO_DESIRED_KEYS
from pyicloud.services.photos_cloudkit.upload import PhotosUploader, _local_time_zone

from media_assets.icloud.pacing import TransferError, transient_status
from media_assets.icloud.session import Connection
from media_assets.media.hashing import CHUNK
from media_assets.storage import TEMP_PREFIX

T = TypeVar("T")
log = logging.getLogger("media_assets.icloud")
LIVE = "live"
ORIGINAL = "original"


@dataclass(frozen=True)
class RemoteFile:
    """One file of an asset: its original, or the video of a Live Photo. `source_id` is `<asset id>/<kind>`,
    so both files of a Live Photo share a folder-like prefix and deduplication pairs them."""

    asset_id: str
    master_id: str
    kind: str
    filename: str
    size: int | None
    checksum: str | None
    url: str
    taken: datetime | None = None  # see asset_taken

    @property
    def source_id(self) -> str:
        return f"{self.asset_id}/{self.kind}"

    @property
    def version(self) -> str:
        return self.checksum or f"size:{self.size}"


def split_source_id(source_id: str) -> tuple[str, str]:
    asset_id, _, kind = source_id.rpartition("/")
    return asset_id, kind


def files_of(asset: PhotoAsset) -> list[RemoteFile]:
    versions = asset.versions
    files = []
    for kind, version in ((ORIGINAL, "original"), (LIVE, "original_video")):
        entry = versions.get(version)
        if entry is None or not entry.get("url") or (kind == LIVE and not asset.is_live_photo):
            continue
        files.append(RemoteFile(asset.id, asset.master_id, kind, entry.get("filename") or asset.filename,
                                entry.get("size"), entry.get("checksum") or _token_checksum(asset, kind),
                                entry["url"], asset_taken(asset)))
    return files


def asset_taken(asset: PhotoAsset) -> datetime | None:
    """iCloud's capture date of the asset (assetDate): aware, in the time zone Apple recorded for it
    (timeZoneOffset, seconds east of UTC), or naive UTC when it recorded none (the date chain then finds the
    zone). None when the asset has no date (pyicloud then answers the Unix epoch)."""
    try:
        moment = asset.asset_date
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None
    if not isinstance(moment, datetime) or moment.timestamp() <= 0:
        return None
    offset = asset.asset_record.fields.get_value("timeZoneOffset")
    if isinstance(offset, int) and abs(offset) <= 14 * 3600:
        return moment.astimezone(timezone(timedelta(seconds=offset)))
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _token_checksum(asset: PhotoAsset, kind: str) -> str | None:
    prefix = "resOriginalRes" if kind == ORIGINAL else "resOriginalVidComplRes"
    token = asset.master_record.fields.get_value(prefix)
    return getattr(token, "fileChecksum", None)


def until_known_run(items: Iterable[T], is_known: Callable[[T], bool], stop_after: int | None
                    ) -> Iterator[tuple[T, bool]]:
    """Each item with whether it is known, stopping after `stop_after` known items in a row (None: never),
    like icloudpd's --until-found: in a newest-first walk, a run of known assets means the rest is known."""
    run = 0
    for item in items:
        known = is_known(item)
        yield item, known
        run = run + 1 if known else 0
        if stop_after is not None and run >= stop_after:
            return


def recently_added(connection: Connection) -> Iterator[PhotoAsset]:
    """Every asset, newest added first, one page per request, each page retried on its own.

    pyicloud's own generator cannot be resumed after a failed page, so this walks the same trailing-rank windows
    (`_get_photos_at` of the pinned pyicloud) itself."""
    album = connection.photos().libraries["root"].recently_added()
    page = album.page_size
    offset, seen = page - 1, set[str]()
    while True:
        def listing(offset: int = offset) -> list[PhotoAsset]:
            return list(album._get_photos_at(offset, album._direction, page))

        window = connection.retry.call(listing, what="listing")
        fresh = [p for p in window if p.id not in seen]
        seen.update(p.id for p in fresh)
        yield from reversed(fresh)
        if len(fresh) < page:
            return
        offset += len(fresh)


def lookup_asset(connection: Connection, asset_id: str) -> PhotoAsset | None:
    """The asset as Apple has it now (fresh download URLs), or None when it is not (or not yet) indexed."""
    client = connection.photos().private_client
    zone = CKZoneIDReq(**PRIMARY_ZONE)

    def records(names: list[str]) -> list[Any]:
        found = connection.retry.call(lambda: client.lookup(record_names=names, zone_id=zone,
                                                            desired_keys=PHOTO_DESIRED_KEYS), what="lookup")
        return [r for r in found.records if getattr(r, "recordType", None) in ("CPLAsset", "CPLMaster")]

    assets = records([asset_id])
    if not assets:
        return None
    master_name = getattr(assets[0].fields.get_value("masterRef"), "recordName", None)
    masters = records([master_name]) if master_name else []
    if not masters:
        return None
    library = connection.photos().libraries["root"]
    return PhotoAsset(connection.photos(), masters[0], assets[0], library=library)


def refreshed(connection: Connection, file: RemoteFile) -> RemoteFile:
    asset = lookup_asset(connection, file.asset_id)
    fresh = next((f for f in files_of(asset) if f.kind == file.kind), None) if asset else None
    if fresh is None:
        raise TransferError(f"{file.filename} is no longer in iCloud", 404)
    return fresh


def checksum_matches(expected: str | None, digest: bytes) -> bool:
    """Apple's own `fileChecksum` format cannot be recomputed; one that is a base64 SHA-256 is checked."""
    if not expected:
        return True
    try:
        raw = base64.b64decode(expected, validate=True)
    except ValueError:
        return True
    return len(raw) != 32 or raw == digest


def _read(connection: Connection, file: RemoteFile, write: Callable[[bytes], object]) -> tuple[int, bytes]:
    """Stream one file's bytes from iCloud into `write`: (bytes, SHA-256 digest)."""
    digest, size = hashlib.sha256(), 0
    try:
        response = connection.service.session.get(file.url, stream=True, timeout=(10, 60))
    except PyiCloudEndpointGoneException:
        raise TransferError(f"download URL of {file.filename} expired", 410) from None
    try:
        for chunk in response.iter_content(CHUNK):
            write(chunk)
            digest.update(chunk)
            size += len(chunk)
    except requests.RequestException as error:
        raise TransferError(f"{file.filename}: connection broke ({type(error).__name__})") from None
    finally:
        response.close()
    return size, digest.digest()


def _stream(connection: Connection, file: RemoteFile, target: Path) -> tuple[int, str]:
    temp = target.parent / f"{TEMP_PREFIX}{target.name}"
    try:
        with temp.open("wb") as out:
            size, digest = _read(connection, file, out.write)
            out.flush()
            os.fsync(out.fileno())
        if file.size is not None and size != file.size:
            raise TransferError(f"{file.filename}: got {size} of {file.size} bytes")
        if not checksum_matches(file.checksum, digest):
            raise TransferError(f"{file.filename}: checksum differs from iCloud's")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return size, digest.hex()


def _with_fresh_url(connection: Connection, file: RemoteFile, read: Callable[[RemoteFile], T], what: str) -> T:
    """`read(file)`, retried on transient failures with backoff; an expired URL (410) is refreshed from Apple."""
    current = file

    def attempt() -> T:
        nonlocal current
        try:
            return read(current)
        except TransferError as error:
            if error.status != 410:
                raise
            current = refreshed(connection, current)
            return read(current)

    return connection.retry.call(attempt, what=what)


def download(connection: Connection, file: RemoteFile, target: Path) -> tuple[int, str]:
    """Stream one file to `target` (temp name, size and checksum checked, atomic rename); (bytes, sha256)."""
    return _with_fresh_url(connection, file, lambda current: _stream(connection, current, target),
                           f"download of {file.filename}")


def remote_sha256(connection: Connection, file: RemoteFile) -> str:
    """The SHA-256 of the bytes iCloud serves for `file`, streamed and not kept: proof of what Apple holds,
    which its own `fileChecksum` (a format of Apple's) cannot give."""
    return _with_fresh_url(connection, file, lambda current: _read(connection, current, lambda _chunk: None)[1].hex(),
                           f"reading back {file.filename}")


def _uploader(connection: Connection) -> PhotosUploader:
    uploader = connection.photos().private_client._uploader  # pyicloud's PhotosUploader: no public handle
    if uploader is None:
        raise TransferError("this account offers no Photos upload service")
    return uploader


def reserve_uploads(connection: Connection, paths: list[Path]) -> list[str | None]:
    """Upload URLs for several files (in their order) in one createUploadUrl request: it takes any number of
    files, as a drop of many photos on iCloud.com does, so each file then costs two requests instead of three.
    Each URL serves one attempt of `upload`; a retry, or a file Apple gave no URL, reserves its own."""
    uploader = _uploader(connection)
    sizes = {str(uuid.uuid4()): path.stat().st_size for path in paths}
    urls = connection.retry.call(lambda: uploader.create_upload_url(zone_name=PRIMARY_ZONE["zoneName"], assets=sizes),
                                 what=f"reserving {len(paths)} uploads")
    return [urls.get(name) for name in sizes]


def asset_date_fields(path: Path, taken: datetime | None) -> tuple[int, int, str]:
    """putAsset's date of a file: (lastModDate in ms, timeZoneOffset in minutes west of UTC as the web client's
    JavaScript counts them, time zone id). Apple files a photo with no date of its own under lastModDate, so it
    is the capture date when one is known; only without one is it the file's time, in this machine's zone."""
    zone_id, local_offset = _local_time_zone()
    if taken is None or taken.utcoffset() is None:
        return int(path.stat().st_mtime * 1000), local_offset, zone_id
    offset = -int(taken.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    return int(taken.timestamp() * 1000), offset, zone_id if offset == local_offset else ""


def _register(uploader: PhotosUploader, path: Path, url: str, taken: datetime | None) -> PhotosPutAssetResult:
    """Send the bytes to a reserved URL and register them, as pyicloud's own upload does after its reservation,
    dated by the capture date."""
    receipt = uploader.send_bytes(url, path)
    modified_ms, offset_minutes, zone_id = asset_date_fields(path, taken)
    results = uploader.put_asset(zone_name=PRIMARY_ZONE["zoneName"], files=[PhotosPutAssetFile(
        fileName=path.name, lastModDate=modified_ms, timeZoneOffset=offset_minutes,
        singleFileUploadRequest=receipt)], import_group=str(uuid.uuid4()), local_time_zone_id=zone_id)
    if len(results) != 1:
        raise TransferError(f"Apple registered {len(results)} assets for {path.name}")
    status = results[0].response.status if results[0].response else None
    if not results[0].is_duplicate and status is not None and status >= 400:
        raise TransferError(f"Apple refused to register {path.name} (status {status})", status)
    return results[0]


def upload(connection: Connection, path: Path, taken: datetime | None = None,
           reserved_url: str | None = None) -> tuple[str, bool]:
    """Send one file through the photosupload flow without waiting for Apple to index it, dated `taken` (aware):
    (asset id, whether Apple already had these bytes). A `reserved_url` (from `reserve_uploads`) saves the
    reservation request; if it no longer works, the file reserves its own."""
    uploader = _uploader(connection)
    url = reserved_url

    def attempt() -> PhotosPutAssetResult:
        nonlocal url
        reserved, url = url, None
        if reserved is not None:
            try:
                return _register(uploader, path, reserved, taken)
            except Exception as error:
                if transient_status(error) is not None:
                    raise  # the retry sends the file again through a fresh reservation
                log.info("iCloud refused the reserved upload URL of %s (%s); reserving another", path.name, error)
        [own] = uploader.create_upload_url(zone_name=PRIMARY_ZONE["zoneName"],
                                           assets={str(uuid.uuid4()): path.stat().st_size}).values()
        return _register(uploader, path, own, taken)

    result = connection.retry.call(attempt, what=f"upload of {path.name}")
    if not result.cplAsset:
        raise TransferError(f"Apple registered {path.name} without an asset id")
    return result.cplAsset, result.is_duplicate


def not_reproducible(asset: PhotoAsset) -> str | None:
    """Why an upload of this asset's original would not be the same asset in Photos; None when it would be."""
    fields = asset.asset_record.fields
    if fields.get_value("burstId"):
        return "part of a burst: the upload would be a lone photo"
    if fields.get_value("adjustmentType") or fields.get_value("adjustmentRenderType"):
        return "edited in Photos: the upload would lose the edit and the original under it"
    if fields.get_value("isFavorite") == 1:
        return "a favourite: the upload cannot mark it"
    if fields.get_value("isHidden") == 1:
        return "hidden: the upload would show it in the library"
    if fields.get_value("captionEnc"):
        return "captioned in Photos: the upload would lose the caption"
    return None


def move_to_recently_deleted(connection: Connection, asset: PhotoAsset) -> None:
    """Move an asset to Recently Deleted (Apple keeps it 30 days)."""
    connection.retry.call(asset.delete, what="moving to Recently Deleted")
