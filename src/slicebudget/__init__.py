"""slicebudget: plan annotation budgets and choose slices to annotate in CT and MRI."""

from slicebudget.errors import UserError
from slicebudget.volume import SparseAnnotation, Volume

__all__ = ["SparseAnnotation", "UserError", "Volume"]
__version__ = "0.1.0"
