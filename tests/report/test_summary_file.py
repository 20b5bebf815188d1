"""What the report writes to summary.json reads back unchanged through read_recommendations."""

from __future__ import annotations

import json

import pytest

from slicebudget.errors import UserError
from slicebudget.report import read_recommendations, summary_dict


def test_written_recommendations_read_back(tmp_path, paper_like_report):
    path = tmp_path / "summary.json"
    written = summary_dict(paper_like_report)
    path.write_text(json.dumps(written))
    read = read_recommendations(path)
    assert [r.as_dict() for r in read] == written["recommendations"]


def test_malformed_summaries_are_one_line_errors(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"version": 1, "runs": []}))
    with pytest.raises(UserError, match="no 'recommendations' list"):
        read_recommendations(path)
    path.write_text(json.dumps({"version": 1, "recommendations": []}))
    with pytest.raises(UserError, match="holds no recommendations"):
        read_recommendations(path)
