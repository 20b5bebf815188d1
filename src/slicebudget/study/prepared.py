"""A study's datasets as runs read them: opened once, normalised once, kept between runs.

Normalisation is MIST-style, fitted on the training cases (never the test cases) and the same for
every run, so runs differ only in what the grid varies. A :class:`DatasetCache` keeps the fitted
normalisation and the normalised cases; :data:`PROCESS_CACHE` is this process's (in-process runs,
or one Dask worker's runs, share it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slicebudget.study.run_spec import RunSpec


@dataclass(frozen=True)
class CaseData:
    image: np.ndarray  # normalised (C, D, H, W) float32
    label: np.ndarray  # dense (D, H, W) ints
    spacing: tuple[float, float, float]


@dataclass(eq=False)
class PreparedDataset:
    """A dataset opened with its normalisation; cases are loaded and normalised once, on demand."""

    dataset: object
    normalizations: list
    cases_: dict[str, CaseData] = field(default_factory=dict)

    def case(self, case_id: str) -> CaseData:
        if case_id not in self.cases_:
            loaded = self.dataset.load_case(case_id)
            if loaded.label is None:
                raise ValueError(f"case {case_id} has no label file; a study needs dense labels")
            image = np.stack([n.apply(v.array) for n, v in zip(self.normalizations, loaded.images)])
            self.cases_[case_id] = CaseData(image.astype(np.float32, copy=False), np.asarray(loaded.label.array),
                                            tuple(float(s) for s in loaded.images[0].spacing))
        return self.cases_[case_id]


class FirstChannel(Mapping):
    """case id -> normalised channel 0 (D, H, W), loaded lazily: what the selection policies see."""

    def __init__(self, prepared: PreparedDataset, case_ids):
        self._prepared, self._ids = prepared, list(case_ids)

    def __getitem__(self, case_id: str) -> np.ndarray:
        if case_id not in self._ids:
            raise KeyError(case_id)
        return self._prepared.case(case_id).image[0]

    def __iter__(self):
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class DatasetCache:
    """Prepared datasets (opened, normalisation fitted, normalised cases) kept between runs.

    Keyed by (dataset folder, fingerprint, training cases); the least recently used of more than
    ``max_entries`` datasets is dropped.
    """

    def __init__(self, max_entries: int = 2):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, PreparedDataset] = OrderedDict()

    def get(self, dataset_path: str | Path, spec: RunSpec) -> PreparedDataset:
        key = (str(dataset_path), spec.dataset.fingerprint, spec.split.train)
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self._entries[key] = _prepare(str(dataset_path), spec.split.train)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return self._entries[key]

    def clear(self) -> None:
        self._entries.clear()


# One per process: the runs a process executes (in-process, or on one Dask worker) share it.
PROCESS_CACHE = DatasetCache()


def _prepare(dataset_path: str, train_ids: tuple[str, ...]) -> PreparedDataset:
    """Open the dataset and fit its normalisation on the training cases."""
    from slicebudget.data.preprocess import fit_normalization
    from slicebudget.io import open_dataset

    dataset = open_dataset(dataset_path)
    train_cases = [dataset.case(cid) for cid in train_ids]
    norms = [fit_normalization(dataset, channel=c, cases=train_cases) for c in range(len(dataset.channel_names))]
    return PreparedDataset(dataset, norms)
