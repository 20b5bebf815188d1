"""Thin Qt widgets over :mod:`napari_slicebudget.logic`."""
