"""The type checker of `make test` catches the calls that used to slip through: a column that is not one a
move sets, and a column given twice (once by name, once inside the changes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

REPOSITORY = Path(__file__).resolve().parent.parent

CALLS = '''
from media_assets.catalog.repository import Catalog, FileChanges, MediaFile
from media_assets.catalog.states import FileState


def quarantine(catalog: Catalog, file: MediaFile, reason: str, changes: FileChanges) -> None:
    catalog.move(file, FileState.QUARANTINED, colour="red")
    catalog.move(file, FileState.QUARANTINED, error=reason, **changes)
    catalog.move(file, FileState.QUARANTINED, detail=reason, error=reason)
'''


@pytest.mark.slow
def test_mypy_reports_an_unknown_column_and_a_column_given_twice(tmp_path: Path) -> None:
    (tmp_path / "calls.py").write_text(CALLS)
    out, _err, status = api.run(["--config-file", str(REPOSITORY / "pyproject.toml"), "--cache-dir",
                                 str(REPOSITORY / ".mypy_cache"), str(tmp_path / "calls.py")])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 2, out
    assert 'Unexpected keyword argument "colour"' in errors[0] and "calls.py:7:" in errors[0]
    assert 'multiple values for keyword argument "error"' in errors[1] and "calls.py:8:" in errors[1]
