"""The folder source: what a scan offers, what it refuses and why, and that it only ever reads inside its roots."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from media_assets.catalog.repository import Catalog
from media_assets.sources.base import SourceError, SourceItem
from media_assets.sources.folder import FolderSource, path_from_key, path_key


def make(path: Path, data: bytes = b"data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    return folder.resolve()


def by_name(items: list[SourceItem]) -> dict[str, SourceItem]:
    return {item.original_name: item for item in items}


def read(source: FolderSource, source_id: str) -> bytes:
    with source.open(source_id) as stream:
        return stream.read()


def test_scan_is_recursive_and_sorted(root: Path) -> None:
    for rel in ("b.jpg", "a.jpg", "Z.JPG", "2023/12/x.heic", "2023/01/y.mov", "2022/z.png", "2023/a.jpg"):
        make(root / rel, rel.encode())
    items = list(FolderSource([root]).scan())

    assert [Path(item.source_id).relative_to(root).as_posix() for item in items] == [
        "Z.JPG", "a.jpg", "b.jpg", "2022/z.png", "2023/a.jpg", "2023/01/y.mov", "2023/12/x.heic"]
    assert all(item.source == "folder" and item.refusal is None for item in items)
    first = items[0]
    assert first.original_name == "Z.JPG"
    assert first.size == len(b"Z.JPG")
    assert first.modified == pytest.approx((root / "Z.JPG").stat().st_mtime)
    info = (root / "Z.JPG").stat()
    assert first.version == f"{info.st_size}:{info.st_mtime_ns}"
    assert list(FolderSource([root]).scan()) == items  # deterministic


def test_scan_covers_every_root(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    make(one / "a.jpg")
    make(two / "b.jpg")
    assert [item.original_name for item in FolderSource([one, two]).scan()] == ["a.jpg", "b.jpg"]


def test_system_files_and_folders_are_skipped(root: Path) -> None:
    for rel in (".DS_Store", "Thumbs.db", "thumbs.DB", "desktop.ini", "._IMG_1.JPG", "sub/._x.mov",
                "@eaDir/IMG_1.JPG/SYNOFILE_THUMB_M.jpg", "sub/@eaDir/thumb.jpg", ".Trashes/old.jpg",
                "IMG_1.JPG", "sub/keep.mov"):
        make(root / rel)
    names = [Path(item.source_id).relative_to(root).as_posix() for item in FolderSource([root]).scan()]
    assert names == ["IMG_1.JPG", "sub/keep.mov"]


def test_symlink_outside_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    secret = make(tmp_path / "outside" / "secret.jpg", b"not yours")
    (root / "link.jpg").symlink_to(secret)
    (item,) = FolderSource([root]).scan()
    assert item.original_name == "link.jpg"
    assert item.refusal is not None and "outside" in item.refusal
    assert item.size is None
    with pytest.raises(SourceError, match="outside"):
        read(FolderSource([root]), item.source_id)


def test_relative_symlink_escaping_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    make(tmp_path / "secret.jpg")
    (root / "sub").mkdir()
    (root / "sub" / "link.jpg").symlink_to("../../secret.jpg")
    (item,) = FolderSource([root]).scan()
    assert item.refusal is not None and "outside" in item.refusal


def test_symlink_inside_the_root_is_accepted(root: Path) -> None:
    target = make(root / "real" / "photo.jpg", b"photo bytes")
    (root / "alias.jpg").symlink_to(target)
    items = by_name(list(FolderSource([root]).scan()))
    alias = items["alias.jpg"]
    assert alias.refusal is None
    assert alias.size == len(b"photo bytes")
    assert alias.source_id == str(root / "alias.jpg")
    assert read(FolderSource([root]), alias.source_id) == b"photo bytes"
    assert items["photo.jpg"].refusal is None


def test_broken_symlink_is_refused(root: Path) -> None:
    (root / "gone.jpg").symlink_to(root / "deleted.jpg")
    (item,) = FolderSource([root]).scan()
    assert item.refusal is not None and "broken" in item.refusal
    assert item.size is None


def test_symlink_loop_is_refused_and_the_scan_goes_on(root: Path) -> None:
    (root / "a.jpg").symlink_to(root / "b.jpg")
    (root / "b.jpg").symlink_to(root / "a.jpg")
    (root / "self.jpg").symlink_to("self.jpg")
    make(root / "z.jpg")
    source = FolderSource([root])
    items = by_name(list(source.scan()))
    assert sorted(items) == ["a.jpg", "b.jpg", "self.jpg", "z.jpg"]
    for name in ("a.jpg", "b.jpg", "self.jpg"):
        assert items[name].refusal is not None
        assert items[name].size is None
        assert source.lookup(items[name].source_id).refusal is not None
        assert not source.unchanged(items[name].source_id, items[name].version)
        with pytest.raises(SourceError):
            read(source, items[name].source_id)
    assert items["z.jpg"].refusal is None


def test_fifo_is_not_a_regular_file(root: Path) -> None:
    os.mkfifo(root / "pipe.jpg")
    (item,) = FolderSource([root]).scan()  # must not block on the pipe
    assert item.refusal == "not a regular file"
    assert item.size is None


def test_symlink_to_a_fifo_inside_the_root_is_refused(root: Path) -> None:
    os.mkfifo(root / "pipe")
    (root / "pipe.jpg").symlink_to(root / "pipe")
    items = by_name(list(FolderSource([root]).scan()))
    assert items["pipe.jpg"].refusal == "not a regular file"


def test_invalid_utf8_name(root: Path) -> None:
    raw_path = os.path.join(os.fsencode(root), b"bad\xff.jpg")
    with open(raw_path, "wb") as out:
        out.write(b"bytes of a file with a broken name")
    source = FolderSource([root])
    (item,) = source.scan()

    assert item.refusal is None
    assert item.source_id.startswith("b64:")
    item.source_id.encode("ascii")  # storable as text anywhere
    assert os.fsencode(path_from_key(item.source_id)) == raw_path
    assert path_key(path_from_key(item.source_id)) == item.source_id
    assert read(source, item.source_id) == b"bytes of a file with a broken name"
    assert source.unchanged(item.source_id, item.version)
    assert source.lookup(item.source_id) == item
    assert item.original_name == "bad\ufffd.jpg"  # readable, and valid UTF-8 for the catalog and reports


def test_invalid_utf8_name_can_be_catalogued(root: Path, catalog: Catalog) -> None:
    with open(os.path.join(os.fsencode(root), b"caf\xe9.jpg"), "wb") as out:
        out.write(b"x")
    (item,) = FolderSource([root]).scan()
    catalog.create_batch("b1")
    file_id = catalog.register_file("b1", source=item.source, source_id=item.source_id, source_version=item.version,
                                    original_name=item.original_name, size_bytes=item.size)
    assert file_id is not None
    stored = catalog.get_file(file_id)
    assert stored.original_name == "caf\ufffd.jpg"
    assert os.fsencode(path_from_key(stored.source_id)) == os.path.join(os.fsencode(root), b"caf\xe9.jpg")


def test_name_with_a_newline(root: Path) -> None:
    make(root / "two\nlines.jpg", b"newline")
    source = FolderSource([root])
    (item,) = source.scan()
    assert item.refusal is None
    assert item.original_name == "two\nlines.jpg"
    assert not item.source_id.startswith("b64:")  # valid UTF-8 stays readable
    assert path_from_key(item.source_id) == root / "two\nlines.jpg"
    assert read(source, item.source_id) == b"newline"


def test_path_key_round_trip() -> None:
    for raw in (b"/photos/a.jpg", b"/photos/caf\xc3\xa9.jpg", b"/photos/caf\xe9.jpg", b"/p/\xff\xfe\n.jpg"):
        path = Path(os.fsdecode(raw))
        key = path_key(path)
        key.encode("utf-8")
        assert os.fsencode(path_from_key(key)) == raw
    assert path_key(Path("/photos/café.jpg")) == "/photos/café.jpg"
    assert path_key(Path(os.fsdecode(b"/x\xe9"))).startswith("b64:")


def test_open_outside_the_roots_raises(root: Path, tmp_path: Path) -> None:
    outside = make(tmp_path / "elsewhere.jpg", b"private")
    make(root / "inside.jpg")
    source = FolderSource([root])
    for source_id in (str(outside), str(root / ".." / "elsewhere.jpg"), "/etc/passwd",
                      path_key(Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"x\xff"))))):
        with pytest.raises(SourceError, match="outside"):
            read(source, source_id)
        assert not source.unchanged(source_id, "0:0")


def test_open_missing_file_raises_source_error(root: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        read(FolderSource([root]), str(root / "vanished.jpg"))


def test_a_root_sharing_a_prefix_does_not_count(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    sibling = make(tmp_path / "photos-private" / "a.jpg")
    make(root / "b.jpg")
    with pytest.raises(SourceError):
        read(FolderSource([root]), str(sibling))


def test_unchanged_false_after_append(root: Path) -> None:
    path = make(root / "growing.mov", b"first part")
    source = FolderSource([root])
    (item,) = source.scan()
    assert source.unchanged(item.source_id, item.version)
    with path.open("ab") as out:
        out.write(b" and more")
    assert not source.unchanged(item.source_id, item.version)


def test_unchanged_false_when_deleted(root: Path) -> None:
    path = make(root / "a.jpg")
    source = FolderSource([root])
    (item,) = source.scan()
    path.unlink()
    assert not source.unchanged(item.source_id, item.version)


def test_lookup(root: Path, tmp_path: Path) -> None:
    make(root / "sub" / "a.jpg", b"abc")
    source = FolderSource([root])
    (item,) = source.scan()
    assert source.lookup(item.source_id) == item

    gone = source.lookup(str(root / "sub" / "missing.jpg"))
    assert gone.refusal is not None and gone.original_name == "missing.jpg"

    outside = source.lookup(str(make(tmp_path / "other.jpg")))
    assert outside.refusal is not None and "outside" in outside.refusal


def test_lookup_does_not_accept_dot_dot_escapes(root: Path, tmp_path: Path) -> None:
    make(tmp_path / "other.jpg", b"private")
    item = FolderSource([root]).lookup(str(root / ".." / "other.jpg"))
    assert item.refusal is not None and "outside" in item.refusal


def test_version_changes_when_the_file_changes(root: Path) -> None:
    path = make(root / "a.jpg", b"version one")
    source = FolderSource([root])
    (before,) = source.scan()
    path.write_bytes(b"version two")  # same size, new mtime
    later = time.time() + 10
    os.utime(path, (later, later))
    (after,) = source.scan()
    assert after.source_id == before.source_id
    assert after.version != before.version
    assert not source.unchanged(before.source_id, before.version)
    assert source.unchanged(after.source_id, after.version)


def test_the_source_folder_is_never_modified(root: Path) -> None:
    make(root / "a.jpg")
    make(root / "sub" / "b.jpg")
    before = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))
    source = FolderSource([root])
    for item in source.scan():
        read(source, item.source_id)
        source.unchanged(item.source_id, item.version)
    after = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*"))
    assert after == before



@contextmanager
def as_nobody_when_root() -> Iterator[None]:
    """Root reads everything, so as root the block runs with real and effective uid `nobody` (the saved uid stays
    0, which is what allows switching back)."""
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(65534, 65534, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


def test_an_unreadable_file_is_refused_with_the_reason() -> None:
    folder = Path(tempfile.mkdtemp(prefix="unreadable-"))  # not under tmp_path: that is root's alone (0700)
    try:
        folder.chmod(0o755)
        make(folder / "photo.jpg").chmod(0o644)
        make(folder / "secret.jpg").chmod(0o000)
        source = FolderSource([folder])
        with as_nobody_when_root():
            items = by_name(list(source.scan()))
            with pytest.raises(SourceError) as refused, source.open(items["secret.jpg"].source_id):
                pass
            assert read(source, items["photo.jpg"].source_id) == b"data"
        assert items["photo.jpg"].refusal is None
        assert items["secret.jpg"].refusal == "file is not readable (permissions)"
        assert refused.value.reason == "cannot read file: Permission denied"
    finally:
        shutil.rmtree(folder)
