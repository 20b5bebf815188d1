"""Bad input reaches the user as one line and a non-zero exit; --debug shows the traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slicebudget.cli.main import main
from slicebudget.errors import UserError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slicebudget.cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_help_is_instant_and_lists_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("data", "bench"):
        assert command in result.stdout


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from slicebudget.cli.main import app; "
        "heavy = [m for m in ('torch', 'SimpleITK', 'matplotlib', 'napari') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == ""


def test_user_error_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.nii.gz"
    code = main(["select", str(missing), "--policy", "fixed", "--density", "0.1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "nope.nii.gz" in err and "Traceback" not in err


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(UserError):
        main(["--debug", "select", str(tmp_path / "nope.nii.gz"), "--policy", "fixed", "--density", "0.1"])


def test_unknown_option_is_a_usage_line_not_a_traceback(capsys):
    code = main(["select", "--bogus"])
    err = capsys.readouterr().err
    assert code == 2
    assert "No such option: --bogus" in err and "Traceback" not in err
