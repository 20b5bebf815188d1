"""The masked loss sees annotated voxels only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slicebudget.training.losses import masked_cross_entropy, masked_dice_ce_loss


def loss_and_grad(logits, target, mask):
    logits = logits.clone().requires_grad_(True)
    loss = masked_dice_ce_loss(logits, target, mask)
    loss.backward()
    return loss.detach(), logits.grad


@pytest.mark.parametrize("spatial", [(6, 8, 8), (8, 8)])
def test_labels_on_unannotated_voxels_change_neither_loss_nor_gradient(spatial):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, *spatial, generator=g)
    target = torch.randint(0, 3, (2, *spatial), generator=g)
    mask = torch.zeros(2, *spatial, dtype=torch.bool)
    mask[:, 1:3] = True  # two annotated slices (3D) or rows (2D)
    other = torch.where(mask, target, torch.randint(0, 3, target.shape, generator=g))
    other[~mask & (other == 0)] = 255  # even an out-of-range ignore value is harmless
    loss_a, grad_a = loss_and_grad(logits, target, mask)
    loss_b, grad_b = loss_and_grad(logits, other, mask)
    assert torch.equal(loss_a, loss_b)
    assert torch.equal(grad_a, grad_b)
    assert torch.all(grad_a.movedim(1, -1)[~mask] == 0)
    assert torch.any(grad_a.movedim(1, -1)[mask] != 0)


def test_full_mask_cross_entropy_equals_torch_and_confident_right_beats_wrong():
    target = torch.randint(0, 2, (2, 4, 5, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(target, dtype=torch.bool)
    logits = torch.randn(2, 2, 4, 5, 5, generator=torch.Generator().manual_seed(2))
    assert masked_cross_entropy(logits, target, mask) == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    right = F.one_hot(target, 2).movedim(-1, 1).float() * 20 - 10
    assert masked_dice_ce_loss(right, target, mask) < 1e-3
    assert masked_dice_ce_loss(-right, target, mask) > 10


def test_nothing_annotated_gives_zero_loss_and_zero_gradient():
    logits = torch.randn(1, 2, 3, 4, 4)
    target = torch.ones(1, 3, 4, 4, dtype=torch.long)
    loss, grad = loss_and_grad(logits, target, torch.zeros(1, 3, 4, 4, dtype=torch.bool))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.all(grad == 0)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shapes disagree"):
        masked_dice_ce_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long), torch.ones(1, 4, 5, dtype=torch.bool))
