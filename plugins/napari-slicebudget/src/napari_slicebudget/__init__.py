"""napari plugin for slicebudget: plan, annotate, propagate and export sparse slice annotations.

The plugin strings together the first steps of slicebudget's flow for a person: read a volume,
suggest slices, track what has been painted, propagate, export. Logic lives in
:mod:`napari_slicebudget.logic` (no Qt); the widgets in :mod:`napari_slicebudget.widgets` are thin.
"""

__version__ = "0.1.0"
