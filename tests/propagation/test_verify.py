"""Verification of a carried mask and the decode of a diffuse carry, on hand-made slices."""

from __future__ import annotations

import numpy as np

from slicebudget.propagation.sli2vol.verify import decode_proposal, is_diffuse, verify_step

CLASSES = np.array([0, 1], dtype=np.uint8)


def _diffuse_blob() -> np.ndarray:
    """Foreground probability 0.4 over a 5 x 5 block: carried mass 10, but no pixel wins the argmax."""
    fg = np.zeros((16, 16), dtype=np.float32)
    fg[4:9, 6:11] = 0.4
    return np.stack([1.0 - fg, fg])


def test_a_diffuse_carry_is_decoded_by_area_only_when_asked():
    probs = _diffuse_blob()
    assert is_diffuse(probs)
    assert not decode_proposal(probs, CLASSES).any()  # the argmax loses the object
    by_area = decode_proposal(probs, CLASSES, keep_area=True)
    assert int(by_area.sum()) == 10  # round(carried mass) pixels ...
    assert by_area[4:9, 6:11].sum() == 10  # ... where the probability went


def test_a_sharp_carry_is_decoded_by_argmax_even_when_asked_to_keep_area():
    fg = np.zeros((16, 16), dtype=np.float32)
    fg[4:9, 6:11] = 0.9
    probs = np.stack([1.0 - fg, fg])
    assert not is_diffuse(probs)
    np.testing.assert_array_equal(decode_proposal(probs, CLASSES, keep_area=True), decode_proposal(probs, CLASSES))


def test_verification_arbitrates_a_faint_lesion_on_a_wide_intensity_scale():
    # Contrast 0.004 in normalised units (8 HU in an air-to-bone CT range) over noise 0.001: far
    # below the likelihoods' MIN_STD floor, yet four noise SDs: the image can tell inside from ring.
    rng = np.random.default_rng(0)
    tissue, lesion, noise = 0.612, 0.608, 0.001
    src_labels = np.zeros((32, 32), dtype=np.uint8)
    src_labels[10:20, 10:20] = 1
    src = np.where(src_labels == 1, lesion, tissue) + rng.normal(0, noise, src_labels.shape)
    dst_truth = np.zeros_like(src_labels, dtype=bool)
    dst_truth[10:20, 10:15] = True  # on the next slice only the left half is still lesion
    dst = np.where(dst_truth, lesion, tissue) + rng.normal(0, noise, src_labels.shape)
    probs = np.stack([src_labels == 0, src_labels == 1]).astype(np.float32)  # a plain copy
    verified = verify_step(dst, src, src_labels, probs, CLASSES)
    kept = verified.labels == 1
    assert kept[dst_truth].mean() > 0.9
    assert kept[(src_labels == 1) & ~dst_truth].mean() < 0.1
