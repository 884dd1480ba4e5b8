"""Every file judged right through the whole road: its true extension, the displayed picture for near copies,
the most original name and the richest file as keeper."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PIL import Image, ImageOps

from media_assets.catalog.states import FileState
from media_assets.defs.instance import Pipeline
from media_assets.media.perceptual import fingerprint
from media_assets.media.sample_library import TAG_ORIENTATION, make_photo, photo_bytes, textured_image
from media_assets.runner import run_batch
from media_assets_tests.conftest import MakePipeline
from media_assets_tests.first_phases import download_and_deduplicate


def test_heic_bytes_named_jpg_arrive_everywhere_as_heic(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    make_photo(library / "IMG_0007.JPG", size=(320, 240), fmt="HEIC", taken=datetime(2022, 4, 5, 6, 7, 8))
    pipeline = make_pipeline()
    report = run_batch(pipeline)
    assert report.success, report.error
    (file,) = pipeline.catalog.iter_files(report.batch_id, FileState.VERIFIED)
    assert file.media_format == "heic"
    assert file.sorted_path is not None and file.sorted_path.endswith("2022/04/05/IMG_0007.heic")
    (upload,) = pipeline.catalog.uploads_of(file.id)
    assert upload.remote_id is not None and upload.remote_id.endswith("IMG_0007.heic")
    assert (pipeline.settings.destinations.local_destination_dir / upload.remote_id).is_file()


#: The transpose that stores a displayed picture so that EXIF orientation N shows it upright again.
STORED_AS = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
             7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def test_eight_orientations_of_one_photo_are_one_photo(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    """Stored eight ways with the eight orientation tags, identical when displayed: one is delivered."""
    library = tmp_path / "library"
    shown = textured_image((640, 480), 11)
    for orientation, transpose in STORED_AS.items():
        stored = shown if transpose is None else shown.transpose(transpose)
        path = library / f"o{orientation}" / "IMG_0100.JPG"
        make_photo(path, image=stored, taken=datetime(2021, 6, 7, 8, 9, 10),
                   extra_exif={TAG_ORIENTATION: orientation})
        with Image.open(path) as check:
            assert ImageOps.exif_transpose(check).size == (640, 480)
    pipeline = make_pipeline()
    report = run_batch(pipeline)
    assert report.success, report.error
    assert report.files_by_state.get("verified") == 1, report.files_by_state
    assert report.files_by_state.get("duplicate") == 7


def _keepers(pipeline: Pipeline, batch_id: str) -> dict[str, str]:
    """{duplicate's source path relative to the library: its keeper's}."""
    library = pipeline.settings.sources.folder_source_paths[0]
    found = {}
    for row in pipeline.catalog.duplicates(batch_id):
        file, keeper = pipeline.catalog.get_file(row.file_id), pipeline.catalog.get_file(row.keeper_id)
        found[str(Path(file.source_id).relative_to(library))] = str(Path(keeper.source_id).relative_to(library))
    return found


def test_the_keeper_of_exact_copies_has_the_most_original_name(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    photo = photo_bytes(size=(320, 240), seed=5, taken=datetime(2020, 2, 3, 4, 5, 6))
    names = ["a/Copy of IMG_0001.JPG", "b/IMG_0001 (1).JPG", "c/IMG_0001 copy.JPG", "d/IMG_0001-1.JPG",
             "e/IMG_0001.JPG", "f/IMG_0001_2.JPG"]  # walked in this order: the original comes fifth
    for name in names:
        (library / name).parent.mkdir(parents=True, exist_ok=True)
        (library / name).write_bytes(photo)
    pipeline = make_pipeline()
    download_and_deduplicate(pipeline, "b1")
    assert _keepers(pipeline, "b1") == {name: "e/IMG_0001.JPG" for name in names if name != "e/IMG_0001.JPG"}


def _motion_photo(still: bytes) -> bytes:
    """A Motion Photo as Google and Samsung write it: the JPEG, then an MP4 appended after its end marker."""
    movie = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x10mdat" + bytes(8) * 500
    return still + movie


def test_a_file_that_holds_more_than_its_picture_is_the_keeper(make_pipeline: MakePipeline, tmp_path: Path) -> None:
    library = tmp_path / "library"
    still = photo_bytes(size=(640, 480), seed=6, taken=datetime(2020, 2, 3, 4, 5, 6))
    (library / "a").mkdir(parents=True)
    (library / "a" / "PXL_20200203_040506000.jpg").write_bytes(still)  # the plain copy is walked first
    (library / "b").mkdir()
    (library / "b" / "PXL_20200203_040506000.MP.jpg").write_bytes(_motion_photo(still))
    pipeline = make_pipeline()
    download_and_deduplicate(pipeline, "b1")
    assert _keepers(pipeline, "b1") == {"a/PXL_20200203_040506000.jpg": "b/PXL_20200203_040506000.MP.jpg"}


def test_a_richer_file_is_never_dropped_for_a_plain_one_kept_earlier(make_pipeline: MakePipeline,
                                                                     tmp_path: Path) -> None:
    library = tmp_path / "library"
    still = photo_bytes(size=(640, 480), seed=7, taken=datetime(2020, 2, 3, 4, 5, 6))
    library.mkdir()
    (library / "plain.jpg").write_bytes(still)
    pipeline = make_pipeline()
    download_and_deduplicate(pipeline, "b1")
    (library / "motion.MP.jpg").write_bytes(_motion_photo(still))
    download_and_deduplicate(pipeline, "b2")
    assert _keepers(pipeline, "b2") == {}
    (motion,) = pipeline.catalog.iter_files("b2", FileState.UNIQUE)
    assert motion.original_name == "motion.MP.jpg"


def test_what_a_file_holds_beyond_its_picture() -> None:
    real = Path(__file__).parent / "real_files"
    iphone = fingerprint(real / "iphone13pro_pug.heic", "photo")
    assert iphone.extras is not None and "hdrgainmap" in iphone.extras and "depth map" in iphone.extras
    assert fingerprint(real / "xiaomi_m2012k11ag.heic", "photo").extras is None
    assert fingerprint(real / "canon_s40_flower.jpg", "photo").extras is None
    stereo = fingerprint(real / "nintendo_3ds_frozenpond.mpo", "photo")
    assert stereo.extras is not None and "MPF" in stereo.extras
