"""LightMedSeg (3D): anchors, local structural priors and a learned skip router in 0.48 M parameters."""

from slicebudget.models.lightmedseg.loss import dice_ce_boundary_loss
from slicebudget.models.lightmedseg.network import LightMedSeg

__all__ = ["LightMedSeg", "dice_ce_boundary_loss"]
