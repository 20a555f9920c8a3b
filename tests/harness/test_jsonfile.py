"""Dataset indices and persisted dataclasses read through fleet.harness.jsonfile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.harness.jsonfile import from_known_fields
from fleet.harness.tasks.openimages import read_annotations
from fleet.harness.tasks.squad_features import read_dataset


@pytest.mark.parametrize("text, message", [
    (None, "not found (expected ROOT/"),
    ("{oops", "is not valid JSON"),
    ('{"images": {}}', "has no 'images' list (not COCO format)"),
])
def test_openimages_annotations_errors_name_the_file(tmp_path: Path, text, message) -> None:
    from fleet.harness.tasks.openimages import annotations_path

    path = annotations_path(tmp_path)
    if text is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        read_annotations(tmp_path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert isinstance(info.value, FileNotFoundError) == (text is None)


def test_squad_file_must_hold_a_data_list(tmp_path: Path) -> None:
    path = tmp_path / "dev-v1.1.json"
    path.write_text('[{"data": []}]')
    with pytest.raises(ValueError, match="has no 'data' list"):
        read_dataset(path)
    path.write_text('{"data": [], "version": "1.1"}')
    assert read_dataset(path) == {"data": [], "version": "1.1"}


def test_from_known_fields_ignores_fields_a_newer_writer_added() -> None:
    @dataclass
    class Row:
        name: str
        count: int = 0

    assert from_known_fields(Row, {"name": "a", "count": 2, "added_later": True}) == Row("a", 2)
    with pytest.raises(TypeError):
        from_known_fields(Row, {"count": 2})
