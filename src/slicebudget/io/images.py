"""Read and write medical images with SimpleITK, keeping the source header exactly.

Reading reorients to slicebudget's canonical array order (see :mod:`slicebudget.volume`) by
permuting and flipping axes only; writing undoes that and restores the source spacing, origin and
direction, so labels written back sit on exactly the source voxel grid.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from slicebudget.errors import UserError
from slicebudget.io.atomic import atomic_write
from slicebudget.volume import SourceGeometry, Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_suffix(path: str | Path) -> str | None:
    """The recognised image suffix of ``path`` (``.nii.gz`` counts as one), or None."""
    name = Path(path).name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def strip_suffix(path: str | Path) -> str:
    """File name without its image suffix: ``case_0001_0000.nii.gz`` -> ``case_0001_0000``."""
    name = Path(path).name
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else Path(name).stem


def _check_gzip(path: Path) -> None:
    # ITK reports a truncated gzip with a long C++ message, or sometimes silently reads zeros;
    # reading the stream through once gives a clear, reliable answer.
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"corrupt or truncated gzip file ({exc})", path) from exc


def _check_nifti_size(path: Path) -> None:
    # ITK reads a truncated uncompressed NIfTI without complaint, filling the missing voxels with
    # zeros; the header says how many bytes the voxels need, so compare before reading.
    import nibabel

    try:
        proxy = nibabel.load(str(path)).dataobj
    except Exception as exc:  # nibabel raises several types for a damaged header
        raise UserError(f"cannot read NIfTI header ({str(exc).splitlines()[0][:200]})", path) from exc
    needed = int(proxy.offset) + int(np.prod(proxy.shape)) * np.dtype(proxy.dtype).itemsize
    size = path.stat().st_size
    if size < needed:
        raise UserError(f"truncated file: the header needs {needed} bytes, the file has {size}", path)


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D scalar image with SimpleITK, turning every failure into a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError("file not found", path)
    if path.is_dir():
        raise UserError("expected an image file, found a folder", path)
    if image_suffix(path) is None:
        raise UserError(f"unsupported file type; expected one of {', '.join(IMAGE_SUFFIXES)}", path)
    if path.name.lower().endswith(".gz"):
        _check_gzip(path)
    elif image_suffix(path) == ".nii":
        _check_nifti_size(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "unreadable")
        raise UserError(f"cannot read image ({first.strip()[:200]})", path) from exc
    if image.GetDimension() != 3 or min(image.GetSize()) < 1:
        raise UserError(f"expected a 3D volume, got a {image.GetDimension()}D image of size {image.GetSize()}", path)
    if image.GetSize()[2] == 1:
        raise UserError(f"expected a 3D volume, got a single slice of size {image.GetSize()}", path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError("expected a scalar image, got a multi-component (vector/RGB) image", path)
    return image


def _count_non_finite(path: Path, array: np.ndarray) -> int:
    n_bad = int((~np.isfinite(array)).sum())
    if n_bad == 0 and image_suffix(path) in (".nii", ".nii.gz"):
        # ITK's NIfTI reader silently turns NaN into 0, so look at the stored values themselves.
        import nibabel

        stored = np.asanyarray(nibabel.load(str(path)).dataobj)
        n_bad = int((~np.isfinite(stored)).sum())
    return n_bad


def read_volume(path: str | Path) -> Volume:
    """Read an image into canonical orientation; NaN voxels are refused."""
    path = Path(path)
    image = read_image(path)
    geometry = SourceGeometry.from_header(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    array = geometry.to_canonical(sitk.GetArrayFromImage(image))
    if np.issubdtype(array.dtype, np.floating):
        n_bad = _count_non_finite(path, array)
        if n_bad:
            raise UserError(f"image holds {n_bad} NaN or infinite voxels", path)
    return Volume(array, geometry, name=str(path))


def read_labels(path: str | Path, like: Volume | None = None) -> Volume:
    """Read an integer label image; with ``like``, its grid must match the image's exactly."""
    labels = read_volume(path)
    array = labels.array
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise UserError("label image holds non-integer values", path)
        array = array.astype(np.int16)
    if array.size and array.min() < 0:
        raise UserError(f"label image holds negative value {int(array.min())}", path)
    labels = labels.with_array(array)
    if like is not None and not like.same_grid(labels):
        raise UserError(f"label geometry does not match its image {Path(like.name).name or '(image)'}", path)
    return labels


def to_sitk(array: np.ndarray, like: Volume) -> sitk.Image:
    """A canonical array as a SimpleITK image with ``like``'s source header."""
    if tuple(array.shape) != like.shape:
        raise ValueError(f"array shape {array.shape} does not match volume shape {like.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(like.geometry.to_source(array))
    image.SetSpacing(like.geometry.spacing)
    image.SetOrigin(like.geometry.origin)
    image.SetDirection(like.geometry.direction)
    return image


def write_volume(array: np.ndarray, like: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write a canonical array with exactly ``like``'s source header, atomically."""
    path = Path(path)
    if image_suffix(path) is None:
        raise UserError(f"unsupported output type; expected one of {', '.join(IMAGE_SUFFIXES)}", path)
    image = to_sitk(np.asarray(array), like)
    with atomic_write(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as exc:
            raise UserError(f"cannot write image ({str(exc).strip().splitlines()[-1][:200]})", path) from exc
    return path
