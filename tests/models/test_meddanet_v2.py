from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from slicebudget.models import create_model
from slicebudget.models.meddanet_v2.crop import centre_from_fraction, crop_window, place_window
from slicebudget.models.meddanet_v2.network import CROP, FULL, SKIP, MedDANetV2
from slicebudget.models.meddanet_v2.quant import QuantConv2d, quantize_weight, straight_through_one_hot
from slicebudget.models.meddanet_v2.training import evaluate_volumes
from slicebudget.training.meddanet_v2 import train_meddanet_v2


def _forced(model: MedDANetV2, choice: int) -> MedDANetV2:
    """Make the policy pick ``choice`` for every slice (zero weights, one large bias)."""
    with torch.no_grad():
        model.policy.head.weight.zero_()
        model.policy.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0]))
        model.policy.head.bias[choice] = 10.0
    return model.eval()


def _model(**params) -> MedDANetV2:
    return create_model("meddanet_v2", dims=2, in_channels=1, classes=2, crop_size=32, **params)


def test_crop_at_integer_centre_is_slicing_and_placing_puts_it_back():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    centre = torch.tensor([[6.0, 9.0], [8.0, 8.0]])
    window = crop_window(x, centre, 8)
    assert torch.equal(window[0], x[0, :, 2:10, 5:13])
    assert torch.equal(window[1], x[1, :, 4:12, 4:12])
    placed = place_window(window, centre, 8, (16, 16))
    assert torch.allclose(placed[0, :, 2:10, 5:13], window[0], atol=1e-3)
    outside = placed[0].clone()
    outside[:, 2:10, 5:13] = 0
    assert outside.abs().max() < 1e-3  # zeros everywhere else
    half = place_window(window[:, :, ::2, ::2], centre, 8, (16, 16))  # features at half scale
    assert half.shape == (2, 3, 8, 8) and torch.allclose(half[1, :, 2:6, 2:6], window[1, :, ::2, ::2], atol=1e-3)


def test_crop_centre_stays_inside_and_gets_gradients():
    fraction = torch.tensor([[0.0, 1.0]], requires_grad=True)
    centre = centre_from_fraction(fraction, 8, (16, 20))
    assert centre.tolist() == [[4.0, 16.0]]
    image = torch.linspace(0, 1, 20).expand(1, 1, 16, 20).contiguous()
    crop_window(image, centre + 0.3, 8).sum().backward()
    assert fraction.grad.abs().sum() > 0


def test_weight_quantisation_levels_error_and_straight_through_gradient():
    weight = torch.randn(64, 32, requires_grad=True)
    for bits in (8, 16):
        q = quantize_weight(weight, bits)
        scale = weight.abs().max()
        assert len(torch.unique(q.detach())) <= 2**bits - 1
        assert (q - weight).abs().max() <= scale / (2 ** (bits - 1) - 1) / 2 + 1e-6
    quantize_weight(weight, 8).sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))
    logits = torch.tensor([[0.2, 1.0]], requires_grad=True)
    one_hot = straight_through_one_hot(logits)
    assert one_hot.tolist() == [[0.0, 1.0]]
    (one_hot * torch.tensor([8.0, 16.0])).sum().backward()
    assert logits.grad[0, 1] > 0 > logits.grad[0, 0]


def test_per_sample_bits_match_running_each_sample_alone():
    torch.manual_seed(0)
    conv = QuantConv2d(3, 4, 3, padding=1, bit_choices=(2, 16)).eval()
    x = torch.randn(3, 3, 8, 8)
    bits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    together = conv(x, bits)
    for i in range(3):
        assert torch.allclose(together[i : i + 1], conv(x[i : i + 1], bits[i : i + 1]), atol=1e-6)
    assert not torch.allclose(conv(x[:1], bits[:1]), conv(x[:1], bits[1:2]))


@pytest.mark.parametrize("choice", [SKIP, FULL, CROP])
def test_eval_runs_only_the_chosen_branch_and_accounts_flops_exactly(choice):
    model = _forced(_model(), choice)
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    assert out.shape == (3, 2, 64, 64)
    assert [d.choice for d in model.last_decisions_] == [("skip", "full", "crop")[choice]] * 3
    assert counter.get_total_flops() == pytest.approx(float(model.last_gflops_.sum()) * 1e9, rel=1e-6)
    table = model.cost_table((64, 64))
    if choice == SKIP:
        assert counter.get_total_flops() == 3 * table["policy"]
        assert (out.argmax(dim=1) == 0).all()
    static = sum(table["full"])
    per_slice = float(model.last_gflops_[0]) * 1e9
    assert per_slice < 0.05 * static if choice == SKIP else per_slice > 0.3 * static
    if choice == CROP:
        assert per_slice < 0.75 * static and model.last_decisions_[0].centre == (32.0, 32.0)
    assert all(d.bits is not None and set(d.bits) <= {8, 16} for d in model.last_decisions_ if d.choice != "skip")
    assert (model.last_bit_gflops_ <= model.last_gflops_ + 1e-9).all()


def test_static_forward_is_the_full_precision_unet():
    model = _forced(_model(), SKIP)
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model.static_forward(x)
    assert out.shape == (2, 2, 48, 48)
    assert counter.get_total_flops() == pytest.approx(2 * sum(model.cost_table((48, 48))["full"]))
    assert [d.choice for d in model.last_decisions_] == ["full", "full"]


def test_crop_is_never_chosen_when_the_window_does_not_fit():
    model = _forced(create_model("meddanet_v2", dims=2, in_channels=1, classes=2), CROP)  # crop 96
    with torch.no_grad():
        model(torch.randn(1, 1, 64, 64))
    assert model.last_decisions_[0].choice != "crop"


def test_phases_freeze_the_right_parts_and_the_loss_charges_compute():
    model = _model()
    assert len(model.training_phases) == 4
    model.set_phase(0)
    assert not any(p.requires_grad for p in model.policy.parameters())
    assert not any(p.requires_grad for p in model.crop_net.parameters())
    assert not model.quantize
    model.set_phase(2)
    assert not any(p.requires_grad for p in model.policy.parameters())
    assert all(p.requires_grad for p in model.crop_net.parameters()) and model.quantize
    assert not model.policy.training and model.crop_net.training
    with pytest.raises(ValueError):
        model.set_phase(4)
    model.set_phase(3)
    model.train()
    x, target = torch.randn(4, 1, 64, 64), torch.zeros(4, 64, 64, dtype=torch.long)
    outputs = model(x)
    cost = model.train_outputs_["cost"]
    assert cost.shape == (4,) and (cost > 0).all() and (cost < 1.1).all()
    loss = model.compute_loss(outputs, target, None)
    loss.backward()
    assert all(p.grad is not None for p in model.policy.head.parameters())
    assert model.unet.selectors[0].fc2.weight.grad is not None


def test_three_paper_phases_train_end_to_end_on_tiny_slices():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(1, 6, 32, 32)).astype(np.float32)
    label = np.zeros((6, 32, 32), dtype=np.int64)
    label[2:4, 8:20, 10:22] = 1
    volume[0][label == 1] += 2.0

    def batches():
        while True:
            index = rng.integers(0, 6, 4)
            yield torch.from_numpy(volume[0][index][:, None]), torch.from_numpy(label[index]), None

    model = create_model("meddanet_v2", dims=2, in_channels=1, classes=2, crop_size=16)
    history = train_meddanet_v2(model, batches(), phase_steps=(2, 2, 2, 2))
    assert [r["phase"] for r in history] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(np.isfinite(r["loss"]) for r in history)
    result = evaluate_volumes(model, [volume], [label], classes=2)
    assert 0 <= result.dice <= 1
    assert result.measured_gflops_per_slice == pytest.approx(result.gflops_per_slice, rel=1e-6)
    assert sum(result.choice_share.values()) == pytest.approx(1.0)
