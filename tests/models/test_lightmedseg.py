from __future__ import annotations

import torch

from slicebudget.models import count_flops, count_parameters, create_model
from slicebudget.models.lightmedseg.blocks import GlobalAnchorDetector, GhostConv3d, anchor_offset_map
from slicebudget.models.lightmedseg.loss import class_boundary, dice_ce_boundary_loss, inverse_frequency_weights

PAPER_PARAMS = 0.48e6
PAPER_GFLOPS = 14.64  # read as FLOPs, 2 per MAC (see the network's docstring)


def test_parameter_count_matches_the_paper_within_15_percent():
    model = create_model("lightmedseg", dims=3, in_channels=4, classes=4)
    assert abs(count_parameters(model) - PAPER_PARAMS) / PAPER_PARAMS < 0.15
    assert count_parameters(GlobalAnchorDetector(4, num_anchors=8)) == 8640  # the paper's 8.6K


def test_flops_at_128_cubed_match_the_paper_within_15_percent():
    # Every convolution scales with the voxel count, so 32^3 x 64 gives the 128^3 count up to the
    # few MLP/FiLM/SE FLOPs (<0.01 %) without the cost of a 128^3 pass in a test.
    model = create_model("lightmedseg", dims=3, in_channels=4, classes=4)
    flops_128 = count_flops(model, torch.randn(1, 4, 32, 32, 32)) * 64
    assert abs(flops_128 / 1e9 - PAPER_GFLOPS) / PAPER_GFLOPS < 0.15


def test_ghost_conv_halves_dense_parameters_and_keeps_width():
    ghost = GhostConv3d(8, 16)
    dense = torch.nn.Conv3d(8, 16, 3, bias=False)
    assert ghost(torch.randn(1, 8, 6, 6, 6)).shape == (1, 16, 6, 6, 6)
    assert count_parameters(ghost) < 0.6 * count_parameters(dense)


def test_anchors_lie_in_the_unit_cube_and_offsets_are_factored():
    anchors = GlobalAnchorDetector(1, num_anchors=3)(torch.randn(2, 1, 16, 16, 16) * 10)
    assert anchors.shape == (2, 3, 3) and anchors.min() >= 0 and anchors.max() <= 1
    offsets = anchor_offset_map(anchors, (4, 5, 6))
    assert offsets.shape == (2, 3, 4, 5, 6)
    z, y, x = 1, 2, 3
    expected = ((z + 0.5) / 4 - anchors[:, :, 0]) + ((y + 0.5) / 5 - anchors[:, :, 1]) + ((x + 0.5) / 6 - anchors[:, :, 2])
    assert torch.allclose(offsets[:, :, z, y, x], expected)


def test_boundary_and_inverse_frequency_weights():
    target = torch.zeros(1, 9, 9, dtype=torch.long)
    target[0, 3:6, 3:6] = 1
    one_hot = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float()
    boundary = class_boundary(one_hot, radius=1)
    assert boundary[0, 3, 4] and boundary[0, 2, 4] and not boundary[0, 4, 4] and not boundary[0, 0, 0]
    weights = inverse_frequency_weights(one_hot, torch.ones(1, 9, 9))
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    assert weights[1] / weights[0] == torch.tensor((81 - 9) / 9)


def test_loss_ignores_unannotated_voxels_and_prefers_correct_logits():
    torch.manual_seed(0)
    target = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6, 2:6] = 1
    ignore = torch.zeros_like(target, dtype=torch.bool)
    ignore[:, :, :, :3] = True
    logits = torch.randn(1, 2, 8, 8, 8)
    changed = logits.clone()
    changed[:, :, :, :, :3] = torch.randn(1, 2, 8, 8, 3) * 5
    assert torch.isclose(dice_ce_boundary_loss(logits, target, ignore), dice_ce_boundary_loss(changed, target, ignore))
    good = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 10 - 5
    assert dice_ce_boundary_loss(good, target) < 0.1 < dice_ce_boundary_loss(logits, target)
    all_ignored = dice_ce_boundary_loss(logits.requires_grad_(), target, torch.ones_like(ignore))
    assert all_ignored.item() == 0.0
    all_ignored.backward()
