"""Training samples from sparse labels: 2D batches over annotated slices, 3D patches via TorchIO.

2D follows the slice-selection study: every batch is drawn uniformly at random (with replacement)
from the annotated slices of all training volumes, so a volume counts in proportion to how many of
its slices were annotated. 3D uses a TorchIO queue whose patch centres fall on foreground,
annotated background, or unannotated voxels with configurable probabilities (the study used
30/55/15 background/lesion/unannotated on ATLAS and 50/30/20 liver/tumour/rest on LiTS17).

A batch is a dict of tensors: ``image`` (B, C, *spatial) float32, ``target`` (B, *spatial) int64 and
``mask`` (B, *spatial) bool (True where annotated; padding is never annotated).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torchio as tio

from slicebudget.training.augment import augment_sample, decode_labels, encode_labels
from slicebudget.training.spec import TrainingCase

PAD_MULTIPLE = 32  # 2D encoders downsample five times

# Values of the 3D sampling map. Padding gets a value no probability is attached to, so a patch is
# never centred outside the real volume.
PADDING, UNANNOTATED, BACKGROUND, FOREGROUND = 0, 1, 2, 3


def annotated_slice_index(cases: Sequence[TrainingCase]) -> np.ndarray:
    """(N, 2) array of (case position, slice index) for every annotated slice of every case."""
    pairs = [(i, int(s)) for i, case in enumerate(cases) for s in case.annotation.annotated_slices]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _place(array: np.ndarray, size: tuple[int, int], offset: tuple[int, int], fill) -> np.ndarray:
    """Crop/pad the last two axes of ``array`` to ``size``; ``offset`` is where row/col 0 of the
    source lands in the output (negative offsets crop)."""
    out = np.full(array.shape[:-2] + tuple(size), fill, dtype=array.dtype)
    src_h, src_w = array.shape[-2:]
    oy, ox = offset
    y0, x0 = max(0, oy), max(0, ox)
    y1, x1 = min(size[0], oy + src_h), min(size[1], ox + src_w)
    if y1 > y0 and x1 > x0:
        out[..., y0:y1, x0:x1] = array[..., y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


class SliceBatchSampler:
    """Endless 2D batches drawn uniformly from the annotated slices of all training volumes.

    Without ``slice_size`` each slice is centred in a canvas of the largest in-plane size rounded up
    to a multiple of 32; with it, each slice is randomly cropped (or padded) to ``slice_size``.
    Slice choice and crop positions come from ``numpy.random.default_rng(seed)``; augmentation draws
    from torch's RNG, which the caller seeds.
    """

    def __init__(
        self,
        cases: Sequence[TrainingCase],
        batch_size: int,
        seed: int,
        slice_size: tuple[int, int] | None = None,
        transform: tio.Transform | None = None,
    ):
        self.cases = list(cases)
        self.batch_size = batch_size
        self.slice_size = slice_size
        self.transform = transform
        self.index_ = annotated_slice_index(self.cases)
        if len(self.index_) == 0:
            raise ValueError("no annotated slice in any training case; nothing to train on")
        self.rng_ = np.random.default_rng(seed)
        if slice_size is None:
            max_h = max(c.image.shape[2] for c in self.cases)
            max_w = max(c.image.shape[3] for c in self.cases)
            self.canvas_ = (round_up(max_h, PAD_MULTIPLE), round_up(max_w, PAD_MULTIPLE))
        else:
            self.canvas_ = tuple(slice_size)

    def sample_indices(self) -> np.ndarray:
        """(batch_size, 2) (case position, slice index) pairs, uniform over annotated slices."""
        picks = self.rng_.integers(0, len(self.index_), size=self.batch_size)
        return self.index_[picks]

    def _offset(self, h: int, w: int) -> tuple[int, int]:
        ch, cw = self.canvas_
        if self.slice_size is None:
            return (ch - h) // 2, (cw - w) // 2
        # Random crop where the slice is larger than the canvas, centred pad where it is smaller.
        oy = -int(self.rng_.integers(0, h - ch + 1)) if h > ch else (ch - h) // 2
        ox = -int(self.rng_.integers(0, w - cw + 1)) if w > cw else (cw - w) // 2
        return oy, ox

    def slice_sample(self, case_pos: int, slice_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """One slice as (image (C, h, w), encoded labels (h, w)) on the batch canvas."""
        case = self.cases[case_pos]
        image = case.image[:, slice_idx]
        encoded = encode_labels(case.annotation.labels[slice_idx], np.ones(image.shape[1:], dtype=bool))
        if self.transform is not None:
            aug_image, aug_encoded = augment_sample(
                torch.from_numpy(np.ascontiguousarray(image[:, None], dtype=np.float32)),
                torch.from_numpy(encoded[None]),
                self.transform,
            )
            image, encoded = aug_image[:, 0].numpy(), aug_encoded[0].numpy()
        offset = self._offset(*image.shape[1:])
        return _place(image.astype(np.float32), self.canvas_, offset, 0.0), _place(encoded, self.canvas_, offset, 0)

    def next_batch(self) -> dict[str, torch.Tensor]:
        samples = [self.slice_sample(int(c), int(s)) for c, s in self.sample_indices()]
        images = np.stack([s[0] for s in samples])
        labels, mask = decode_labels(np.stack([s[1] for s in samples]))
        return {
            "image": torch.from_numpy(images),
            "target": torch.from_numpy(labels.astype(np.int64)),
            "mask": torch.from_numpy(mask),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.next_batch()


def group_probabilities(sampling: dict[str, float]) -> tuple[dict[int, int], dict[int, float]]:
    """Map values for keyed classes ({class id: map value}) and TorchIO ``label_probabilities``.

    Foreground classes with their own ``class_<id>`` key get a map value each; the rest share the
    ``foreground`` value, so within a group every voxel is equally likely to be a centre.
    """
    keyed = sorted(int(k.split("_", 1)[1]) for k in sampling if k.startswith("class_"))
    class_values = {class_id: FOREGROUND + 1 + position for position, class_id in enumerate(keyed)}
    probabilities = {
        UNANNOTATED: float(sampling.get("unannotated", 0.0)),
        BACKGROUND: float(sampling.get("background", 0.0)),
        FOREGROUND: float(sampling.get("foreground", 0.0)),
    }
    probabilities.update({value: float(sampling[f"class_{cid}"]) for cid, value in class_values.items()})
    return class_values, probabilities


def sampling_map(annotation_labels: np.ndarray, annotated: np.ndarray, sampling: dict[str, float]) -> np.ndarray:
    """Integer map of patch-centre groups (values as in :func:`group_probabilities`)."""
    class_values, _ = group_probabilities(sampling)
    out = np.full(annotation_labels.shape, UNANNOTATED, dtype=np.int64)
    annotated_voxels = np.broadcast_to(annotated[:, None, None], annotation_labels.shape)
    out[annotated_voxels] = BACKGROUND
    out[annotated_voxels & (annotation_labels > 0)] = FOREGROUND
    for class_id, value in class_values.items():
        out[annotated_voxels & (annotation_labels == class_id)] = value
    return out


class GroupLabelSampler(tio.LabelSampler):
    """TorchIO's label sampler over the group map, falling back to uniform over real voxels when
    no group with a positive weight occurs in a volume (e.g. only empty slices annotated and
    ``{"foreground": 1}``): a legitimate sparse dataset should not crash training."""

    def get_probability_map(self, subject: tio.Subject) -> torch.Tensor:
        probability_map = super().get_probability_map(subject)
        if float(probability_map.sum()) > 0:
            return probability_map
        return (self.get_probability_map_image(subject).data != PADDING).float()


def _pad_to(array: np.ndarray, shape: tuple[int, int, int], fill) -> np.ndarray:
    """Pad the last three axes symmetrically up to at least ``shape``."""
    spatial = array.shape[-3:]
    pads = [(0, 0)] * (array.ndim - 3)
    for size, target in zip(spatial, shape, strict=True):
        extra = max(0, target - size)
        pads.append((extra // 2, extra - extra // 2))
    return np.pad(array, pads, constant_values=fill) if any(p != (0, 0) for p in pads) else array


def case_subject(case: TrainingCase, patch_size: tuple[int, int, int], sampling: dict[str, float]) -> tio.Subject:
    """A TorchIO subject with the image, the encoded labels and the sampling map, padded so a patch fits."""
    annotation = case.annotation
    encoded = encode_labels(annotation.labels, annotation.voxel_mask())
    groups = sampling_map(annotation.labels, annotation.annotated, sampling)
    image = np.asarray(case.image, dtype=np.float32)  # no copy when already float32; patches copy out
    return tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(_pad_to(image, patch_size, 0.0))),
        labels=tio.LabelMap(tensor=torch.from_numpy(_pad_to(encoded[None], patch_size, 0))),
        sampling=tio.LabelMap(tensor=torch.from_numpy(_pad_to(groups[None], patch_size, PADDING))),
        case_id=case.case_id,
    )


def build_patch_queue(
    cases: Sequence[TrainingCase],
    patch_size: tuple[int, int, int],
    sampling: dict[str, float],
    samples_per_volume: int,
    queue_length: int,
) -> tio.Queue:
    """A TorchIO queue of patches whose centres follow ``sampling`` (seed torch before building it)."""
    subjects = [case_subject(case, patch_size, sampling) for case in cases]
    _, probabilities = group_probabilities(sampling)
    sampler = GroupLabelSampler(patch_size, label_name="sampling", label_probabilities=probabilities)
    return tio.Queue(
        tio.SubjectsDataset(subjects),
        max_length=max(queue_length, samples_per_volume),
        samples_per_volume=samples_per_volume,
        sampler=sampler,
        num_workers=0,
        shuffle_subjects=True,
        shuffle_patches=True,
    )


def patch_batches(
    queue: tio.Queue, batch_size: int, transform: tio.Transform | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless 3D batches popped from ``queue``, each patch augmented by ``transform`` if given."""
    index = 0
    while True:
        images, encodeds = [], []
        for _ in range(batch_size):
            patch = queue[index]
            index += 1
            image, encoded = patch["image"].data.float(), patch["labels"].data[0].long()
            if transform is not None:
                image, encoded = augment_sample(image, encoded, transform)
            images.append(image)
            encodeds.append(encoded)
        labels, mask = decode_labels(torch.stack(encodeds))
        yield {"image": torch.stack(images), "target": labels, "mask": mask}
