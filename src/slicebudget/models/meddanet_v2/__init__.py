"""Med-DANet V2 (2D): per-slice skip / whole / crop decisions and dynamic weight quantisation."""

from slicebudget.models.meddanet_v2.network import CHOICES, MedDANetV2, SliceDecision

__all__ = ["CHOICES", "MedDANetV2", "SliceDecision"]
