"""The contract every registered model keeps, checked at tiny sizes for each dimensionality it supports."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slicebudget.models import MODEL_REGISTRY, create_model, model_info

CASES = [(name, dims) for name in MODEL_REGISTRY for dims in model_info(name)]
IDS = [f"{name}-{dims}d" for name, dims in CASES]
TINY = {2: (64, 64), 3: (32, 32, 32)}
ODD = {2: (50, 70), 3: (20, 24, 36)}  # sizes no network stride divides


def _loss(model, outputs, target):
    if hasattr(model, "compute_loss"):
        return model.compute_loss(outputs, target, None)
    return F.cross_entropy(outputs, target)


@pytest.mark.parametrize(("name", "dims"), CASES, ids=IDS)
def test_output_shape_for_any_size(name, dims):
    model = create_model(name, dims=dims, in_channels=2, classes=3).eval()
    for size in (TINY[dims], ODD[dims]):
        with torch.no_grad():
            out = model(torch.randn(1, 2, *size))
        assert out.shape == (1, 3, *size)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "dims"), CASES, ids=IDS)
def test_backward_gives_finite_nonzero_gradients(name, dims):
    model = create_model(name, dims=dims, in_channels=1, classes=2).train()
    x = torch.randn(2, 1, *TINY[dims])
    target = (x[:, 0] > 0).long()
    _loss(model, model(x), target).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads, "no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(int(g.abs().sum() > 0) for g in grads) > len(grads) // 2


@pytest.mark.parametrize(("name", "dims"), CASES, ids=IDS)
def test_same_seed_same_weights_and_output(name, dims):
    x = torch.randn(1, 1, *TINY[dims])
    first = create_model(name, dims=dims, in_channels=1, classes=2, seed=7).eval()
    second = create_model(name, dims=dims, in_channels=1, classes=2, seed=7).eval()
    other = create_model(name, dims=dims, in_channels=1, classes=2, seed=8).eval()
    state, state2, state3 = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], state2[k]) for k in state)
    assert any(not torch.equal(state[k], state3[k]) for k in state)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


@pytest.mark.parametrize(("name", "dims"), CASES, ids=IDS)
def test_overfits_one_case(name, dims, make_blob_case):
    torch.manual_seed(0)
    image, target = make_blob_case(dims, TINY[dims][0])
    params = {"base_channels": 8, "depth": 3} if name == "unet3d" else {}  # the default is slow for a test
    model = create_model(name, dims=dims, in_channels=1, classes=2, **params).train()
    if hasattr(model, "set_phase"):
        model.set_phase(0)  # Med-DANet V2: the segmentation network's own phase
    learning_rate = 1e-2 if name == "lightmedseg" else 3e-3  # the 0.5 M-parameter net needs a larger step
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    losses = []
    for _ in range(30):
        outputs = model(image)
        loss = _loss(model, outputs, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    prediction = outputs.argmax(dim=1)
    dice = 2 * ((prediction == 1) & (target == 1)).sum() / ((prediction == 1).sum() + (target == 1).sum())
    assert losses[-1] < 0.5 * losses[0]
    assert dice > 0.8
