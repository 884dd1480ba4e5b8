"""Storage: names from sources can never escape their folder, and nobody ever sees half a file."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest

from media_assets import storage
from media_assets.destinations.folder import FolderDestination
from media_assets.storage import (
    MAX_NAME_BYTES,
    TEMP_PREFIX,
    DiffersFromChecksum,
    copy_atomically,
    copy_identity,
    free_target,
    move_file,
    remove_partials,
    safe_name,
    with_suffix_id,
    write_atomically,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_usable(name: str) -> None:
    """A name that can be created as one file in one folder."""
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES  # encodes strictly: no lone surrogates left
    assert all(ch.isprintable() for ch in name)


# -- safe_name -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("/absolute/path/IMG_0001.JPG", "IMG_0001.JPG"),
    ("IMG_0001.JPG", "IMG_0001.JPG"),
    ("line\nbreak.jpg", "line_break.jpg"),
    ("tab\there.jpg", "tab_here.jpg"),
    ("nul\x00byte.jpg", "nul_byte.jpg"),
    ("bell\x07esc\x1b[31mdel\x7f.png", "bell_esc_[31mdel_.png"),
    ("c1\x85control.jpg", "c1_control.jpg"),
    ("rtl\u202egpj.exe", "rtl_gpj.exe"),  # a bidi override could disguise the extension
    ("Urlaub 🏖️ 2023 🎉.jpg", "Urlaub 🏖️ 2023 🎉.jpg"),
    ("Ünïcödé façade.heic", "Ünïcödé façade.heic"),
    ("...hidden.jpg", "hidden.jpg"),
    (".DS_Store", "DS_Store"),
    ("", "unnamed"),
    ("...", "unnamed"),
    ("   ", "unnamed"),
    ("photos/", "unnamed"),
    ("\n", "_"),
    ("para\u2028graph\u2029.jpg", "para_graph_.jpg"),  # Unicode line breaks would split report lines
])
def test_safe_name(raw: str, expected: str) -> None:
    name = safe_name(raw)
    assert name == expected
    assert_usable(name)


def test_safe_name_trims_long_names_and_keeps_the_extension() -> None:
    for stem in ("a" * 300, "é" * 200, "📷" * 80, "ab" + "日本" * 100):
        raw = stem + ".jpeg"
        assert len(raw.encode()) > 255
        name = safe_name(raw)
        assert_usable(name)
        assert name.endswith(".jpeg")
        assert name.startswith(stem[:2])
        assert len(name.encode()) > MAX_NAME_BYTES - 8  # trimmed to the budget, not far below it
        assert name.encode().decode("utf-8") == name  # no character cut in half


def test_safe_name_long_name_without_extension() -> None:
    name = safe_name("x" * 400)
    assert name == "x" * MAX_NAME_BYTES


def test_safe_name_long_suffix_is_not_taken_for_an_extension() -> None:
    name = safe_name("clip." + "y" * 300)
    assert_usable(name)
    assert name.startswith("clip.")


def test_safe_name_repairs_undecodable_names() -> None:
    raw = os.fsdecode(b"caf\xe9.jpg")
    with pytest.raises(UnicodeEncodeError):
        raw.encode("utf-8")  # a lone surrogate: not text PostgreSQL or a phone could store
    name = safe_name(raw)
    assert_usable(name)
    assert name.startswith("caf") and name.endswith(".jpg")
    assert safe_name(name) == name  # stable once safe


def test_safe_name_output_is_creatable(tmp_path: Path) -> None:
    raws = ["../../etc/passwd", "a\nb.jpg", "x" * 300 + ".png", os.fsdecode(b"bad\xff\xfe.jpg"), "", "...",
            "🎉" * 100 + ".mp4"]
    for index, raw in enumerate(raws):
        target = tmp_path / f"{index}" / safe_name(raw)
        target.parent.mkdir()
        target.write_bytes(b"ok")
        assert target.parent == tmp_path / f"{index}"
        assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_with_suffix_id() -> None:
    assert with_suffix_id("IMG_0001.JPG", 42) == "IMG_0001_42.JPG"
    assert with_suffix_id("archive.tar.gz", 7) == "archive.tar_7.gz"
    assert with_suffix_id("README", 3) == "README_3"


# -- free_target -----------------------------------------------------------------------------------------------


def test_free_target_free_name(tmp_path: Path) -> None:
    assert free_target(tmp_path, "IMG_1.JPG", 5, sha(b"mine")) == tmp_path / "IMG_1.JPG"


def test_free_target_taken_by_other_content(tmp_path: Path) -> None:
    (tmp_path / "IMG_1.JPG").write_bytes(b"somebody else's photo")
    assert free_target(tmp_path, "IMG_1.JPG", 5, sha(b"mine")) == tmp_path / "IMG_1_5.JPG"
    assert free_target(tmp_path, "IMG_1.JPG", 5) == tmp_path / "IMG_1_5.JPG"  # no hash: never assume ours
    assert (tmp_path / "IMG_1.JPG").read_bytes() == b"somebody else's photo"


def test_free_target_taken_by_same_content(tmp_path: Path) -> None:
    (tmp_path / "IMG_1.JPG").write_bytes(b"mine")
    assert free_target(tmp_path, "IMG_1.JPG", 5, sha(b"mine")) == tmp_path / "IMG_1.JPG"


# -- write_atomically ------------------------------------------------------------------------------------------


class FailingStream(io.BytesIO):
    """Hands out some bytes, then fails like a network stream or a disk read error."""

    def __init__(self, good: bytes, chunks_before_failure: int = 2) -> None:
        super().__init__()
        self.good = good
        self.left = chunks_before_failure

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.left == 0:
            raise OSError("connection reset while reading")
        self.left -= 1
        return self.good


def test_write_atomically_writes_and_hashes(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    target = tmp_path / "new" / "folder" / "file.bin"
    size, digest = write_atomically(io.BytesIO(data), target)
    assert (size, digest) == (len(data), sha(data))
    assert target.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_write_atomically_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    with pytest.raises(OSError, match="connection reset"):
        write_atomically(FailingStream(b"x" * 1000), target)
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_failure_keeps_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"the good old copy")
    with pytest.raises(OSError):
        write_atomically(FailingStream(b"new bytes " * 100), target, temp_name=".partial-custom")
    assert target.read_bytes() == b"the good old copy"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_write_atomically_interrupt_cleans_up(tmp_path: Path) -> None:
    class Interrupted(FailingStream):
        def read(self, size: int | None = -1) -> bytes:
            if self.left == 0:
                raise KeyboardInterrupt
            return super().read(size)

    with pytest.raises(KeyboardInterrupt):
        write_atomically(Interrupted(b"y" * 10), tmp_path / "file.bin")
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_replaces_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    write_atomically(io.BytesIO(b"new"), target)
    assert target.read_bytes() == b"new"


def test_copy_atomically(tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"payload")
    assert copy_atomically(source, tmp_path / "out" / "b.bin") == (7, sha(b"payload"))
    assert (tmp_path / "out" / "b.bin").read_bytes() == b"payload"


# -- remove_partials -------------------------------------------------------------------------------------------


def test_remove_partials(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    partials = [tmp_path / f"{TEMP_PREFIX}a.jpg", tmp_path / "sub" / f"{TEMP_PREFIX}b.mov",
                tmp_path / "sub" / "deeper" / f"{TEMP_PREFIX}c"]
    keep = [tmp_path / "a.jpg", tmp_path / "sub" / "partial-b.mov", tmp_path / "sub" / "deeper" / "x.partial-"]
    for path in partials + keep:
        path.write_bytes(b"data")

    assert remove_partials(tmp_path) == 3
    assert not any(p.exists() for p in partials)
    assert all(p.read_bytes() == b"data" for p in keep)
    assert remove_partials(tmp_path) == 0


def test_remove_partials_missing_folder(tmp_path: Path) -> None:
    assert remove_partials(tmp_path / "does-not-exist") == 0


def test_partials_of_a_killed_write_are_removed(tmp_path: Path) -> None:
    # A kill -9 skips the cleanup in write_atomically; what it leaves has the prefix remove_partials looks for.
    target = tmp_path / "file.bin"
    with pytest.raises(OSError):
        write_atomically(FailingStream(b"x"), target)
    leftover = tmp_path / f"{TEMP_PREFIX}{target.name}"
    leftover.write_bytes(b"half")
    assert remove_partials(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


# -- move_file ----------------------------------------------------------------------------------


def test_move_file(tmp_path: Path) -> None:
    source = tmp_path / "a.jpg"
    source.write_bytes(b"photo")
    target = tmp_path / "quarantine" / "b1" / "a.jpg"
    move_file(source, target)
    assert not source.exists()
    assert target.read_bytes() == b"photo"


def test_a_move_makes_its_folder_only_when_it_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sorting moves thousands of files into a few date folders: a mkdir before every rename was a syscall, an
    exception and a stat per file."""
    made: list[Path] = []
    mkdir = Path.mkdir

    def counted(path: Path, *args: Any, **kwargs: Any) -> None:
        made.append(path)
        mkdir(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", counted)
    (tmp_path / "a.jpg").write_bytes(b"a")
    move_file(tmp_path / "a.jpg", tmp_path / "2024" / "05" / "a.jpg", durable=False)
    assert set(made) == {tmp_path / "2024", tmp_path / "2024" / "05"}  # made once, for the first move
    made.clear()
    for name in ("d.jpg", "e.jpg"):
        (tmp_path / name).write_bytes(name.encode())
        move_file(tmp_path / name, tmp_path / "2024" / "05" / name, durable=False)
    assert made == []
    assert sorted(p.name for p in (tmp_path / "2024" / "05").iterdir()) == ["a.jpg", "d.jpg", "e.jpg"]
    with pytest.raises(FileNotFoundError):
        move_file(tmp_path / "gone.jpg", tmp_path / "2024" / "05" / "gone.jpg")
    with pytest.raises(FileNotFoundError):
        move_file(tmp_path / "gone.jpg", tmp_path / "2025" / "gone.jpg")


def test_make_durable_fsyncs_each_file_and_folder_without_syncfs(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    written = [tmp_path / "a" / "one.jpg", tmp_path / "b" / "two.jpg"]
    for path in written:
        storage.write_atomically(io.BytesIO(b"bytes"), path, durable=False)
    synced: list[str] = []
    monkeypatch.setattr(storage, "_libc", lambda: object())  # a C library without syncfs
    monkeypatch.setattr(storage, "_fsync_file", lambda path: synced.append(str(path.relative_to(tmp_path))))
    storage.make_durable(written)
    assert synced == ["a/one.jpg", "a", "b/two.jpg", "b"]


def test_a_copy_whose_bytes_are_not_the_expected_ones_is_never_made(tmp_path: Path) -> None:
    """So a folder destination's copy, and its identity, vouch for the catalog's checksum."""
    source = tmp_path / "staged.jpg"
    source.write_bytes(b"bytes that changed after they were hashed")
    with pytest.raises(DiffersFromChecksum):
        copy_atomically(source, tmp_path / "dest" / "a.jpg", expected_sha256=sha(b"the bytes that were hashed"))
    assert list((tmp_path / "dest").iterdir()) == []
    destination = FolderDestination("local", tmp_path / "local", "local folder")
    with pytest.raises(OSError):
        destination.upload(source, "a.jpg", sha(b"the bytes that were hashed"))
    assert destination.all_ids() == set() and destination.identity("a.jpg") is None
    assert destination.upload(source, "a.jpg", sha(source.read_bytes())) == "a.jpg"
    assert destination.identity("a.jpg") == copy_identity(tmp_path / "local" / "a.jpg") is not None


def test_a_copy_is_proven_by_its_identity_until_it_is_written_again(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "kept.jpg"
    source = tmp_path / "src"
    source.write_bytes(b"kept")
    copy_atomically(source, copy)
    identity = copy_identity(copy)
    hashed: list[Path] = []

    def counting(path: Path) -> str:
        hashed.append(path)
        return sha(path.read_bytes())

    monkeypatch.setattr(storage, "sha256_file", counting)
    assert storage.holds_checksum(copy, identity, sha(b"kept")) and hashed == []
    assert storage.holds_checksum(copy, identity, sha(b"kept"), rehash=True) and hashed == [copy]
    assert not storage.holds_checksum(copy, None, sha(b"other")) and len(hashed) == 2
    copy.write_bytes(b"kapt")
    later = copy.stat().st_mtime_ns + 10**9
    os.utime(copy, ns=(later, later))
    assert copy_identity(copy) != identity
    assert not storage.holds_checksum(copy, identity, sha(b"kept")) and len(hashed) == 3
    assert not storage.holds_checksum(tmp_path / "gone.jpg", identity, sha(b"kept"))
