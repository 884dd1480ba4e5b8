"""Deduplication with pHashes from EXIF thumbnails: copies with and without a thumbnail still find each other
(in one batch and across batches), and a stale thumbnail never makes two different photos duplicates."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media import sample_library as sample
from media_assets.media.perceptual import phash64, photo_fingerprint, pixel_signature, reduced_frames, signature
from media_assets.phases.deduplication import DEFAULT_NEAR_RADIUS
from media_assets_tests.conftest import MakePipeline, present
from media_assets_tests.dedup_corpus import exif_with_thumbnail
from media_assets_tests.first_phases import download_and_deduplicate

SIZE = (800, 600)


def _jpeg(image: Image.Image, exif: bytes | None = None, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def _camera(image: Image.Image, thumbnail_of: Image.Image | None = None, orientation: int = 1) -> bytes:
    """A camera JPEG whose EXIF thumbnail shows `thumbnail_of` (the picture itself unless told otherwise)."""
    exif = sample.build_exif(make="Google", model="Pixel 7")
    exif[0x0112] = orientation
    return _jpeg(image, exif_with_thumbnail(exif, thumbnail_of or image))


def _distance(a: int, b: int) -> int:
    return bin((a ^ b) & (2**64 - 1)).count("1")


def _dedup(pipeline: Pipeline, batch_id: str) -> dict[str, str]:
    """Download and deduplicate one batch: {duplicate's name: keeper's name}."""
    download_and_deduplicate(pipeline, batch_id)
    return {pipeline.catalog.get_file(row.file_id).original_name:
            pipeline.catalog.get_file(row.keeper_id).original_name
            for row in pipeline.catalog.duplicates(batch_id)}


def test_the_thumbnail_gives_the_phash_of_the_reduced_decode(tmp_path: Path) -> None:
    for seed in range(4):
        image = sample.textured_image(SIZE, 60 + seed)
        path = tmp_path / f"cam{seed}.jpg"
        path.write_bytes(_camera(image))
        taken = photo_fingerprint(path)
        assert taken.error is None and taken.similarity is None  # from the thumbnail: no decode, no signature
        assert _distance(present(taken.phash), phash64(reduced_frames(path)[0])) <= 2


def test_a_turned_camera_photo_matches_its_upright_copy(tmp_path: Path) -> None:
    upright = sample.textured_image((600, 800), 70)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # sensor orientation; EXIF 6 turns it back upright
    (tmp_path / "cam.jpg").write_bytes(_camera(stored, orientation=6))
    (tmp_path / "copy.jpg").write_bytes(_jpeg(upright.resize((300, 400)), quality=80))
    cam, copy = photo_fingerprint(tmp_path / "cam.jpg"), photo_fingerprint(tmp_path / "copy.jpg")
    assert cam.similarity is None and copy.similarity is not None
    assert _distance(present(cam.phash), present(copy.phash)) <= 2


def test_a_letterboxed_or_missing_thumbnail_falls_back_to_decoding(tmp_path: Path) -> None:
    image = sample.textured_image(SIZE, 71)
    boxed = Image.new("RGB", (800, 800))
    boxed.paste(image, (0, 100))  # square thumbnail with black bars for a 4:3 picture, as some cameras write
    (tmp_path / "boxed.jpg").write_bytes(_camera(image, thumbnail_of=boxed))
    (tmp_path / "bare.jpg").write_bytes(_jpeg(image))
    for name in ("boxed.jpg", "bare.jpg"):
        taken = photo_fingerprint(tmp_path / name)
        assert taken.similarity is not None and taken.phash == phash64(reduced_frames(tmp_path / name)[0])


def test_a_picture_without_a_thumbnail_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow looks for a PNG's EXIF after its pixels when none came before them (a screenshot without EXIF),
    so reading its metadata decodes it: the fingerprint takes its frames from that decode instead of opening
    and decoding the file a second time (a screenshot took twice the CPU)."""
    decodes: list[str] = []
    prepare = PngImagePlugin.PngImageFile.load_prepare

    def counted(img: PngImagePlugin.PngImageFile) -> None:
        decodes.append(str(img.filename))
        prepare(img)

    path = tmp_path / "Screenshot.png"
    sample.textured_image(SIZE, 73).save(path)
    expected = reduced_frames(path)
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", counted)
    taken = photo_fingerprint(path)
    assert decodes == [str(path)]
    assert taken.phash == phash64(expected[0])
    assert taken.similarity == signature(expected)


def test_copies_with_and_without_thumbnails_meet_and_stale_thumbnails_merge_nothing(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    library = pipeline.settings.sources.folder_source_paths[0]
    library.mkdir(parents=True, exist_ok=True)
    first, other = sample.textured_image(SIZE, 80), sample.textured_image(SIZE, 81)
    (library / "IMG_1.jpg").write_bytes(_camera(first))
    assert _dedup(pipeline, "b1") == {}

    (library / "later").mkdir()
    # A messenger's copy: smaller, re-compressed, no EXIF, so its pHash comes from decoding it.
    (library / "later/IMG_1-small.jpg").write_bytes(_jpeg(first.resize((400, 300)), quality=75))
    # Another photo whose editor kept IMG_1's EXIF, stale thumbnail included: its pHash is IMG_1's, twice over.
    (library / "later/IMG_2-edited.jpg").write_bytes(_camera(other, thumbnail_of=first))
    (library / "later/IMG_3-edited.jpg").write_bytes(_camera(other.rotate(180), thumbnail_of=first))
    assert _dedup(pipeline, "b2") == {"IMG_1-small.jpg": "IMG_1.jpg"}
    row = pipeline.catalog.duplicates("b2")[0]
    assert row.kind == "near" and row.distance <= DEFAULT_NEAR_RADIUS
    # The stale ones were candidates of IMG_1 and of each other, and were judged on their real pixels.
    stale = list(pipeline.catalog.iter_files("b2", FileState.UNIQUE))
    assert len(stale) == 2
    columns = pipeline.catalog.fingerprints([f.id for f in stale])
    assert {columns[f.id]["phash"] for f in stale} == {photo_fingerprint(library / "IMG_1.jpg").phash}
    assert all(columns[f.id]["similarity"] is not None for f in stale)
    # IMG_1 was kept with the thumbnail's pHash only: the copy was confirmed on its original in MEDIA_ROOT, whose
    # signature is now kept in the catalog for the next batch that meets it.
    kept = next(pipeline.catalog.iter_files("b1", FileState.UNIQUE))
    original = pipeline.settings.storage.media_root / (kept.original_path or "")
    assert bytes(present(pipeline.catalog.fingerprints([kept.id])[kept.id]["similarity"])) == pixel_signature(original)
