"""Medical-image I/O with SimpleITK and the dataset layouts slicebudget reads and writes."""

from slicebudget.io.atomic import atomic_dir, atomic_write
from slicebudget.io.datasets import Case, Dataset, LoadedCase, NnUNetWriter, open_dataset
from slicebudget.io.json_file import read_json
from slicebudget.io.images import IMAGE_SUFFIXES, read_image, read_labels, read_volume, write_volume

__all__ = [
    "IMAGE_SUFFIXES",
    "Case",
    "Dataset",
    "LoadedCase",
    "NnUNetWriter",
    "atomic_dir",
    "atomic_write",
    "open_dataset",
    "read_image",
    "read_json",
    "read_labels",
    "read_volume",
    "write_volume",
]
