"""Shared fixtures: small volumes written to disk, and where test artifacts go."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slicebudget.io import write_volume
from slicebudget.volume import Volume

# helpers are imported by name from the tests, whatever pytest's import mode
sys.path.insert(0, str(Path(__file__).parent))
from tests_helpers import make_volume  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"


def pytest_addoption(parser):
    parser.addoption("--artifacts-dir", default=None, help="folder for the end-to-end screenshot (default: tmp_path)")
    parser.addoption("--save-artifacts", action="store_true", default=False,
                     help=f"also copy the end-to-end screenshot to {ARTIFACTS / 'e2e.png'}")


@pytest.fixture
def artifacts(request, tmp_path) -> dict:
    folder = request.config.getoption("--artifacts-dir")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)  # a fresh folder name must not fail the test at its last step
    return {"dir": Path(folder) if folder else tmp_path, "save": request.config.getoption("--save-artifacts"),
            "repo_copy": ARTIFACTS / "e2e.png"}


@pytest.fixture
def image_file(tmp_path) -> tuple[Path, Volume]:
    volume = make_volume()
    path = tmp_path / "ct.nii.gz"
    write_volume(volume.array, volume, path)
    return path, volume


@pytest.fixture
def phantom():
    """Image and labels volumes of the plugin's sample (small, anisotropic, off-origin)."""
    from napari_slicebudget.sample_data import phantom_volumes

    return phantom_volumes(shape=(24, 40, 40), spacing=(2.5, 0.9, 0.9), seed=3)
