"""The one JSON reader for files a user points at."""

from __future__ import annotations

import pytest

from slicebudget.errors import UserError
from slicebudget.io import read_json


def test_reads_and_names_the_file_when_missing_or_broken(tmp_path):
    good = tmp_path / "a.json"
    good.write_text('{"x": [1, 2]}')
    assert read_json(good) == {"x": [1, 2]}
    with pytest.raises(UserError, match="summary missing") as missing:
        read_json(tmp_path / "nope.json", missing="summary missing")
    assert missing.value.path == str(tmp_path / "nope.json")
    broken = tmp_path / "b.json"
    broken.write_text('{"x": [1,\n')
    with pytest.raises(UserError, match=r"invalid JSON \(.* at line 2\)") as invalid:
        read_json(broken)
    assert invalid.value.path == str(broken)


def test_a_folder_or_binary_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(UserError, match="cannot read it as JSON") as folder:
        read_json(tmp_path)
    assert folder.value.path == str(tmp_path)
    binary = tmp_path / "c.json"
    binary.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(UserError, match="cannot read it as JSON"):
        read_json(binary)
