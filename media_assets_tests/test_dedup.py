"""Deduplication: accuracy on a generated library, the index, and the rules for what must never be merged."""

from __future__ import annotations

import shutil
import struct
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.ffmpeg_tools import ffmpeg_path
from media_assets.media.near_index import NearIndex, brute_force
from media_assets.media.perceptual import (
    APPLE_MAKERNOTE,
    SIGNATURE_SIZE,
    apple_makernote,
    photo_fingerprint,
    same_picture,
    video_fingerprint,
)
from media_assets.phases import deduplication
from media_assets.phases.deduplication import DEFAULT_NEAR_RADIUS, DedupConfig
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.dedup_corpus import burst_frames, score, write_corpus
from media_assets_tests.first_phases import download_and_deduplicate


def _dedup_batch(pipeline: Pipeline, batch_id: str = "b1") -> dict[Path, Path]:
    """Download and deduplicate one batch; {duplicate's source path: keeper's source path}."""
    download_and_deduplicate(pipeline, batch_id)
    found = {}
    for row in pipeline.catalog.duplicates(batch_id):
        file, keeper = pipeline.catalog.get_file(row.file_id), pipeline.catalog.get_file(row.keeper_id)
        found[Path(file.source_id)] = Path(keeper.source_id)
    return found


@pytest.mark.slow
def test_copies_are_found_and_look_alikes_are_not_merged(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(DEDUP_WORKERS="2")
    library = pipeline.settings.sources.folder_source_paths[0]
    files = write_corpus(library, size=(640, 480), originals=6, bursts=3, flats=2)
    accuracy = score(files, _dedup_batch(pipeline))
    assert accuracy["all"].false_duplicates == 0, accuracy
    assert accuracy["all"].recall >= 0.95, accuracy
    for kind in ("resized50", "resized25", "q70", "png", "heic"):
        assert accuracy[kind].found == accuracy[kind].true_copies, (kind, accuracy[kind])
    states = pipeline.catalog.count_by_state("b1")
    assert states["duplicate"] == accuracy["all"].found
    # Every kept file has its fingerprint, ready for the next batch's index.
    hashed = present(pipeline.catalog.conn.execute(
        "SELECT count(*) AS n FROM media_files WHERE state = 'unique' AND phash IS NOT NULL").fetchone())["n"]
    assert hashed == states["unique"]


def test_decisions_are_recorded_many_files_to_a_transaction(make_pipeline: MakePipeline,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction per file cost a WAL flush per file: the decisions go DECISIONS_PER_TRANSACTION at a time,
    each file's fingerprint, move and duplicate row in its chunk's transaction."""
    monkeypatch.setattr(deduplication, "DECISIONS_PER_TRANSACTION", 3)
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    for seed in range(4):
        sample.make_photo(library / f"IMG_{seed}.jpg", size=(320, 240), seed=80 + seed)
    (library / "IMG_0 copy.jpg").write_bytes((library / "IMG_0.jpg").read_bytes())
    download_and_deduplicate(pipeline, "b1")
    assert pipeline.catalog.count_by_state("b1") == {"unique": 4, "duplicate": 1}
    transactions = pipeline.catalog.conn.execute(
        "SELECT f.id, f.xmin::text AS file_tx, s.xmin::text AS change_tx, f.phash IS NOT NULL AS hashed"
        " FROM media_files f JOIN state_changes s ON s.file_id = f.id AND s.to_state = f.state"
        " WHERE f.batch_id = 'b1' ORDER BY f.id").fetchall()
    assert all(row["file_tx"] == row["change_tx"] and row["hashed"] for row in transactions)
    assert [len({row["file_tx"] for row in transactions[i:i + 3]}) for i in (0, 3)] == [1, 1]
    assert len({row["file_tx"] for row in transactions}) == 2
    [duplicate] = pipeline.catalog.duplicates("b1")
    duplicate_tx = {row["file_tx"] for row in transactions if row["id"] == duplicate.file_id}
    assert present(pipeline.catalog.conn.execute("SELECT xmin::text AS tx FROM duplicate_files WHERE file_id = %s",
                                                 (duplicate.file_id,)).fetchone())["tx"] in duplicate_tx


def test_burst_frames_are_similar_but_not_the_same_picture(tmp_path: Path) -> None:
    frames = burst_frames((640, 480), seed=3)
    paths = []
    for k, frame in enumerate(frames):
        paths.append(tmp_path / f"f{k}.jpg")
        frame.save(paths[-1], quality=92)
    prints = [photo_fingerprint(p) for p in paths]
    assert all(p.error is None for p in prints)
    assert not same_picture(prints[0].similarity, prints[1].similarity)
    assert same_picture(prints[0].similarity, prints[0].similarity)


@pytest.mark.parametrize("extension", ["gif", "webp", "tif"])
def test_animations_and_pages_that_open_alike_are_not_the_same_picture(tmp_path: Path, extension: str) -> None:
    """Two animations (or multi-page scans) with the same first frame differ in what follows; a smaller copy of
    one is still found, and a still of its first frame holds less than the animation: neither is merged."""
    first, second, third = burst_frames((320, 240), seed=5)
    paths = {name: tmp_path / f"{name}.{extension}" for name in ("story", "other_story", "smaller", "still")}
    first.save(paths["story"], save_all=True, append_images=[second, third], duration=200)
    first.save(paths["other_story"], save_all=True, append_images=[third, second], duration=200)
    small = [frame.resize((160, 120)) for frame in (first, second, third)]
    small[0].save(paths["smaller"], save_all=True, append_images=small[1:], duration=200)
    first.save(paths["still"])
    prints = {name: photo_fingerprint(path) for name, path in paths.items()}
    assert prints["story"].phash == prints["other_story"].phash  # a candidate by its first frame...
    assert not same_picture(prints["story"].similarity, prints["other_story"].similarity)  # ...but not the same
    assert same_picture(prints["story"].similarity, prints["smaller"].similarity)
    assert not same_picture(prints["story"].similarity, prints["still"].similarity)


def test_a_black_and_white_edit_is_not_the_colour_photo(tmp_path: Path) -> None:
    """The edit keeps every detail of the original: the colour photo was merged into it and never kept."""
    photo = sample.textured_image((640, 480), 77)
    photo.save(tmp_path / "colour.jpg", quality=92)
    photo.resize((320, 240)).save(tmp_path / "colour_small.jpg", quality=70)
    photo.convert("L").save(tmp_path / "mono.jpg", quality=92)
    photo.convert("L").resize((320, 240)).save(tmp_path / "mono_small.jpg", quality=70)
    prints = {path.stem: present(photo_fingerprint(path).similarity) for path in tmp_path.glob("*.jpg")}
    assert not same_picture(prints["colour"], prints["mono"])
    assert same_picture(prints["colour"], prints["colour_small"])
    assert same_picture(prints["mono"], prints["mono_small"])
    # A signature stored before colour was recorded still finds its copies.
    colour_trailer = len(prints["colour"]) % (4 + SIGNATURE_SIZE[0] * SIGNATURE_SIZE[1])
    without_colour = prints["colour"][:-colour_trailer]
    assert same_picture(without_colour, prints["colour_small"])


def _remux(ffmpeg: str, footage: Path, target: Path, tones: list[int]) -> None:
    """`footage`'s video stream as it is (not re-encoded), with one sine audio stream per tone, or a title."""
    inputs: list[str] = []
    for tone in tones:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency={tone}:duration=1"]
    maps = [arg for index in range(1, len(tones) + 1) for arg in ("-map", f"{index}:a")]
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(footage), *inputs,
                    "-map", "0:v", *maps, "-c:v", "copy", "-c:a", "aac", "-shortest", "-metadata",
                    f"title={target.stem}", str(target)], check=True, capture_output=True, timeout=60)


def test_footage_with_sound_is_not_a_near_duplicate_of_the_silent_footage(make_pipeline: MakePipeline) -> None:
    """The same picture with sound (or with more audio tracks) holds more than without: the silent copy was
    kept and the one with two tracks dropped. A silent copy of the silent footage is still merged."""
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    ffmpeg = ffmpeg_path()
    if ffmpeg is None or sample.make_video(library / "silent.mp4", size=(160, 120), audio=False) is None:
        pytest.skip("no ffmpeg")
    _remux(ffmpeg, library / "silent.mp4", library / "silent_copy.mp4", [])
    _remux(ffmpeg, library / "silent.mp4", library / "one_track.mp4", [440])
    _remux(ffmpeg, library / "silent.mp4", library / "two_tracks.mp4", [440, 880])
    prints = {path.stem: present(video_fingerprint(path).similarity) for path in library.glob("*.mp4")}
    assert not same_picture(prints["silent"], prints["two_tracks"])
    assert not same_picture(prints["one_track"], prints["two_tracks"])
    # A signature stored before audio streams were recorded is still compared as before.
    assert same_picture(prints["silent"][:-len(b"AUDI") - 4], prints["two_tracks"])

    found = {(duplicate.name, keeper.name) for duplicate, keeper in _dedup_batch(pipeline).items()}
    assert found in ({("silent_copy.mp4", "silent.mp4")}, {("silent.mp4", "silent_copy.mp4")})
    assert pipeline.catalog.count_by_state("b1") == {"unique": 3, "duplicate": 1}


def test_a_video_frame_is_decoded_on_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool runs a worker per core already; ffmpeg's own decoding threads held a frame each (46 MB for a
    720p clip instead of 35), and two clips fingerprinted side by side were the deduplication's peak."""
    clip = sample.make_video(tmp_path / "clip.mp4", size=(160, 120), audio=False)
    if clip is None:
        pytest.skip("no ffmpeg")
    commands: list[list[str]] = []
    real_run = subprocess.run

    def run(command: list[str], **options: object) -> subprocess.CompletedProcess[bytes]:
        commands.append(command)
        return real_run(command, **options)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", run)
    assert present(video_fingerprint(clip).phash) is not None
    decodes = [command for command in commands if "image2pipe" in command]
    assert decodes and all(command[command.index("-threads") + 1] == "1"
                           and command.index("-threads") < command.index("-i") for command in decodes)


def _apple_note(entries: dict[int, str]) -> bytes:
    """An Apple MakerNote with ASCII entries, laid out as iPhones write it."""
    head = APPLE_MAKERNOTE + b"\x00\x01MM"
    table_end = len(head) + 2 + 12 * len(entries) + 4
    table, data = b"", b""
    for tag, text in entries.items():
        raw = text.encode() + b"\x00"
        table += struct.pack(">HHI", tag, 2, len(raw)) + struct.pack(">I", table_end + len(data))
        data += raw
    return head + struct.pack(">H", len(entries)) + table + b"\x00" * 4 + data


def test_apple_makernote_gives_content_identifier_and_burst() -> None:
    note = _apple_note({0x0011: "CID-1234", 0x000B: "BURST-9"})
    assert apple_makernote(note) == {0x0011: "CID-1234", 0x000B: "BURST-9"}
    assert apple_makernote(b"Nikon\x00" + note) == {}
    assert apple_makernote(note[:20]) == {}


def test_near_index_finds_what_brute_force_finds() -> None:
    rng = np.random.default_rng(7)
    hashes = rng.integers(-(2**63), 2**63 - 1, 20_000, dtype=np.int64)
    queries = hashes[:300].copy().view(np.uint64)
    for i in range(len(queries)):
        for bit in rng.choice(64, i % 9, replace=False):
            queries[i] ^= np.uint64(1 << int(bit))
    for radius in (0, 3, DEFAULT_NEAR_RADIUS, 9):
        index = NearIndex(np.arange(len(hashes)) + 100, hashes, radius)
        positions, ids, distances = index.search(queries.view(np.int64))
        expected = set(zip(*brute_force(hashes, queries, radius), strict=True))
        assert {(p, i - 100) for p, i in zip(positions.tolist(), ids.tolist(), strict=True)} == expected
        assert (distances <= radius).all() and len(expected) >= min(300, 300 * (radius + 1) // 9)


def test_radius_setting_is_validated(make_pipeline: MakePipeline) -> None:
    from media_assets.settings import SettingsError

    assert DedupConfig.from_settings(make_pipeline(DEDUP_NEAR_RADIUS="4").settings).radius == 4
    with pytest.raises(SettingsError, match="DEDUP_NEAR_RADIUS"):
        DedupConfig.from_settings(make_pipeline(DEDUP_NEAR_RADIUS="-1").settings)


def test_live_photo_raw_jpeg_and_apple_burst_are_never_merged(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    taken = datetime(2024, 5, 1, 12, 0, 0)
    still = sample.photo_bytes(size=(640, 480), seed=41, taken=taken, make="Apple", model="iPhone 15",
                               extra_exif={0x927C: _apple_note({0x0011: "LIVE-1"})})
    (library / "live").mkdir(parents=True)
    (library / "live/IMG_0001.JPG").write_bytes(still)
    sample.make_video(library / "live/IMG_0001.MOV", seconds=1.0, creation_time=taken)
    # A RAW+JPEG pair whose JPEG has an exact copy elsewhere in the batch.
    raw = library / "raw"
    raw.mkdir()
    sample.make_photo(raw / "DSC_0001.JPG", size=(640, 480), seed=42)
    (raw / "DSC_0001.DNG").write_bytes(_tiny_dng())
    shutil.copy(raw / "DSC_0001.JPG", library / "DSC_0001-copy.JPG")
    # Two near-identical burst frames marked with the same BurstUUID.
    frame = sample.textured_image((640, 480), 43)
    for k in range(2):
        data = sample.photo_bytes(image=frame, quality=92 - 10 * k, make="Apple", model="iPhone 15",
                                  extra_exif={0x927C: _apple_note({0x000B: "BURST-7"})})
        (library / f"IMG_90{k}.JPG").write_bytes(data)

    duplicates = _dedup_batch(pipeline)
    names = {p.name: k.name for p, k in duplicates.items()}
    # The loose copy of the pair's JPEG goes; the pair itself stays whole, the burst frames both stay.
    assert names == {"DSC_0001-copy.JPG": "DSC_0001.JPG"}
    rows = {f.original_name: f for f in pipeline.catalog.iter_files("b1", *FileState)}
    keys = pipeline.catalog.fingerprints([f.id for f in rows.values()])
    if "IMG_0001.MOV" in rows:
        assert keys[rows["IMG_0001.JPG"].id]["pair_key"] == keys[rows["IMG_0001.MOV"].id]["pair_key"] is not None
        assert keys[rows["IMG_0001.JPG"].id]["content_identifier"] == "LIVE-1"
    assert keys[rows["DSC_0001.JPG"].id]["pair_key"] == keys[rows["DSC_0001.DNG"].id]["pair_key"] is not None
    assert keys[rows["IMG_900.JPG"].id]["burst_id"] == "BURST-7"


def test_a_live_pair_is_dropped_only_as_a_whole(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    taken = datetime(2024, 5, 1, 12, 0, 0)
    (library / "a").mkdir(parents=True)
    sample.make_photo(library / "a/IMG_0002.JPG", size=(640, 480), seed=44, taken=taken)
    if sample.make_video(library / "a/IMG_0002.MOV", seconds=1.0, creation_time=taken) is None:
        pytest.skip("no ffmpeg")
    first = _dedup_batch(pipeline, "b1")
    assert first == {}
    # Later: the still arrives again beside a different movie. The still alone is an exact copy, but its
    # pair is not entirely a duplicate, so both flow on together.
    (library / "b").mkdir()
    shutil.copy(library / "a/IMG_0002.JPG", library / "b/IMG_0002.JPG")
    sample.make_video(library / "b/IMG_0002.MOV", seconds=2.0, creation_time=taken)
    assert _dedup_batch(pipeline, "b2") == {}
    assert pipeline.catalog.count_by_state("b2") == {"unique": 2}
    # And a whole pair copied again is dropped as a whole.
    shutil.copytree(library / "a", library / "c")
    assert {p.name for p in _dedup_batch(pipeline, "b3")} == {"IMG_0002.JPG", "IMG_0002.MOV"}


def _tiny_dng() -> bytes:
    """A TIFF header with a DNGVersion tag: enough for identify() to accept it as a RAW photo."""
    entry = struct.pack("<HHI4s", 50706, 1, 4, b"\x01\x04\x00\x00")
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + b"\x00" * 4


@pytest.mark.slow
def test_a_copy_arriving_in_a_later_batch_points_to_the_kept_file(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    sample.make_photo(library / "IMG_1000.jpg", size=(1200, 900), seed=45, taken=datetime(2024, 1, 1, 10))
    first = run_batch(pipeline)
    assert first.success and first.duplicates == []

    original = (library / "IMG_1000.jpg").read_bytes()
    (library / "later").mkdir()
    (library / "later/IMG_1000-small.jpg").write_bytes(sample.resized_copy_bytes(original, scale=0.25))
    # A bigger version of it arriving later is kept as well (the earlier one may already be uploaded).
    (library / "later/IMG_1000-big.jpg").write_bytes(
        sample.photo_bytes(image=sample.textured_image((1200, 900), 45).resize((2400, 1800)), quality=90))
    second = run_batch(pipeline)
    assert second.success, second.error
    [late] = second.duplicates
    assert (late.original_name, late.keeper_name, late.kind) == ("IMG_1000-small.jpg", "IMG_1000.jpg",
                                                                          "near")
    assert late.distance <= DEFAULT_NEAR_RADIUS
    keeper = pipeline.catalog.get_file(late.keeper_id)
    assert keeper.batch_id == first.batch_id and keeper.state is FileState.VERIFIED
    assert pipeline.catalog.count_by_state(second.batch_id) == {"verified": 1, "duplicate": 1}
    dedup = next(p for p in second.phases if p["phase"] == "deduplication")
    assert dedup["status"] == "succeeded"


@pytest.mark.slow
def test_the_benchmark_runs_and_finds_no_false_duplicate(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "dedup.py"
    out = tmp_path / "dedup.json"
    done = subprocess.run([sys.executable, str(script), "--quick", "--json", str(out), "--cache", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert results["accuracy"]["all"]["false_duplicates"] == 0
    assert results["accuracy"]["all"]["recall"] >= 0.95
    assert results["search"]["same_answers"] and results["batch"]["files"] == 300
    assert "| kind | true copies |" in done.stdout


def test_a_heic_is_confirmed_on_its_real_pixels_never_its_embedded_thumbnail(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from media_assets.media.perceptual import pixel_signature

    heic = sample.make_photo(tmp_path / "IMG_1.HEIC", size=(640, 480), seed=21, fmt="HEIC")
    drafts: list[str] = []
    real_draft = Image.Image.draft

    def spy(self, mode, size):
        drafts.append(self.format)
        return real_draft(self, mode, size)

    monkeypatch.setattr(Image.Image, "draft", spy)
    fingerprint = photo_fingerprint(heic)
    assert fingerprint.phash is not None and fingerprint.similarity is None, "signature deferred to real pixels"
    drafts.clear()
    assert pixel_signature(heic) is not None
    assert "HEIF" not in drafts, "the confirmation must not read the HEIC's embedded thumbnail"
