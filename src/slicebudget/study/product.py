"""What a run hands back to the driver: its store record and its artefacts, as one picklable object.

A run writes its artefacts (results.csv, selection.json, run.json, checkpoints when asked for) into a
private scratch folder, which :func:`pack_folder` turns into a :class:`RunProduct` of compressed
bytes. On a Dask worker that product is the task's result and travels back through Dask; in-process
it is handed back directly. Either way only the driver unpacks it into the study folder
(:meth:`RunProduct.write_into`), so a worker never needs to write the study folder, nor even see it.

Files a run reads besides the dataset (a model's ``weights_path``, a sli2vol model, the study's
adapted sli2vol model) travel the other way as :class:`RunTask` inputs: the spec names them as
``INPUT_PREFIX + name`` and :func:`materialize_inputs` writes them into the run's scratch folder.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

INPUT_PREFIX = "@input/"  # a path in a worker's spec that names one of the task's shipped inputs
LEVEL = 6  # zlib level: results.csv and run.json shrink ~5x in milliseconds; checkpoints barely shrink


@dataclass(frozen=True)
class RunProduct:
    result: dict  # what the store keeps (see slicebudget.study.store)
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> zlib-compressed content

    @property
    def nbytes(self) -> int:
        """Compressed size of the artefacts: what shipping the run costs beyond its result dict."""
        return sum(len(data) for data in self.files.values())

    def write_into(self, folder: Path) -> None:
        """Unpack the artefacts into ``folder`` (the driver's temporary run folder)."""
        for name, data in self.files.items():
            (Path(folder) / name).write_bytes(zlib.decompress(data))


def pack(content: bytes) -> bytes:
    return zlib.compress(content, LEVEL)


def pack_folder(result: dict, folder: Path) -> RunProduct:
    """The product of a run whose artefacts are the plain files directly inside ``folder``."""
    files = {p.name: pack(p.read_bytes()) for p in sorted(Path(folder).iterdir()) if p.is_file()}
    return RunProduct(result, files)


def materialize_inputs(spec: dict, inputs: dict[str, bytes], folder: Path) -> dict:
    """``spec`` with every ``@input/<name>`` replaced by the path of that input, written into ``folder``."""
    if not inputs:
        return spec
    for name, data in inputs.items():
        (Path(folder) / name).write_bytes(zlib.decompress(data))
    text = json.dumps(spec).replace(INPUT_PREFIX, f"{Path(folder).resolve()}/")
    return json.loads(text)
