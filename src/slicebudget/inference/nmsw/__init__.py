"""NMSW inference: deterministic top-K patches (``NMSWInferer``) and the paper's random-foreground
baseline (``RandomForegroundInferer``), both registered in ``slicebudget.inference.INFERERS``.
The network is :mod:`slicebudget.models.nmsw`; its training :mod:`slicebudget.training.nmsw`.
"""

from slicebudget.inference.nmsw.inferer import NMSWInferer
from slicebudget.inference.nmsw.random_foreground import RandomForegroundInferer

__all__ = ["NMSWInferer", "RandomForegroundInferer"]
