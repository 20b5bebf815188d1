"""The headless study runner behind `budget-study run`: config, grid, store, executors, runner.

    from slicebudget.study import run_study, StudyStore
    run_study("studies/quickstart.yaml", "studies-out/quickstart")
    StudyStore("studies-out/quickstart").runs(status="done")   # RunRecords, see study.store

Submodules import torch, SimpleITK and Dask only inside the functions that need them.
"""

from slicebudget.study.config import StudyConfig, load_config, parse_config
from slicebudget.study.folder import StudyLock, default_study_dir, lock_holder
from slicebudget.study.runner import run_study
from slicebudget.study.store import STATUSES, StudyStore

__all__ = [
    "STATUSES",
    "StudyConfig",
    "StudyLock",
    "StudyStore",
    "default_study_dir",
    "load_config",
    "lock_holder",
    "parse_config",
    "run_study",
]
