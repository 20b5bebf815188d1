"""The training loop: learns, replays exactly per seed, fails loudly, honours model hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from slicebudget.training import TrainingDiverged, TrainSpec, train_model
from slicebudget.training.fit import validation_dice


def spec(**overrides):
    base = dict(iterations=40, batch_size=4, learning_rate=0.02, val_every=20, seed=0, device="cpu")
    return TrainSpec(**{**base, **overrides})


@pytest.fixture
def data(make_sparse_case, make_eval_case):
    train = [make_sparse_case(i, slices=[3, 6, 8]) for i in range(3)]
    return train, [make_eval_case(10)]


def test_2d_training_learns_the_blob_and_loads_best_weights(make_net, data):
    train, val = data
    model = make_net(2)
    before = validation_dice(model, val, spec(), dims=2, n_classes=2)
    progress = []
    result = train_model(model, train, val, spec(augment=False), dims=2, n_classes=2, on_progress=progress.append)
    assert result.best_val_dice > max(0.9, before + 0.2)
    assert [r["iteration"] for r in result.history] == [20, 40]
    assert [p["iteration"] for p in progress] == list(range(1, 41))
    assert result.best_val_dice == max(r["val_dice"] for r in result.history)
    assert not result.model.training
    assert validation_dice(result.model, val, spec(), dims=2, n_classes=2) == pytest.approx(result.best_val_dice)
    assert result.seconds > 0


def test_same_seed_replays_exactly_on_cpu_and_another_seed_does_not(make_net, data):
    train, val = data
    runs = []
    for seed in (5, 5, 6):
        model = make_net(2, seed=0)
        result = train_model(model, train, val, spec(iterations=6, val_every=3, seed=seed), dims=2, n_classes=2)
        runs.append((result.history, result.model.state_dict()))
    (hist_a, w_a), (hist_b, w_b), (hist_c, w_c) = runs
    assert hist_a == hist_b
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert not all(torch.equal(w_a[k], w_c[k]) for k in w_a)


def test_3d_patch_training_replays_exactly_on_cpu(make_net, data):
    train, val = data
    s = spec(iterations=4, val_every=2, batch_size=2, patch_size=(8, 16, 16), samples_per_volume=2, queue_length=4)
    runs = [train_model(make_net(3, seed=0), train, val, s, dims=3, n_classes=2) for _ in range(2)]
    assert runs[0].history == runs[1].history
    w_a, w_b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)


def test_3d_training_on_patches_learns(make_net, data):
    train, val = data
    model = make_net(3)
    s = spec(iterations=30, val_every=15, batch_size=2, learning_rate=0.03, patch_size=(8, 16, 16),
             samples_per_volume=4, queue_length=12, augment=True)
    before = validation_dice(model, val, s, dims=3, n_classes=2)
    result = train_model(model, train, val, s, dims=3, n_classes=2)
    assert result.best_val_dice > max(0.6, before + 0.2)


class ExplodingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x):
        return self.conv(x) * float("nan")


def test_nan_loss_raises_training_diverged(data):
    train, val = data
    with pytest.raises(TrainingDiverged, match="iteration 1"):
        train_model(ExplodingNet(), train, val, spec(), dims=2, n_classes=2)
    assert issubclass(TrainingDiverged, RuntimeError)


class HookedNet(nn.Module):
    """Two phases: phase 1 freezes the first layer; its own loss records what it was given."""

    training_phases = (0.5, 0.5)

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)
        self.phase_calls: list[int] = []
        self.ignore_fractions: list[float] = []

    def set_phase(self, phase: int) -> None:
        self.phase_calls.append(phase)
        self.first.requires_grad_(phase == 0)

    def forward(self, x):
        return {"logits": self.head(torch.relu(self.first(x))), "aux": x}

    def compute_loss(self, outputs, target, ignore_mask):
        assert set(outputs) == {"logits", "aux"}
        self.ignore_fractions.append(ignore_mask.float().mean().item())
        logits = outputs["logits"]
        ce = nn.functional.cross_entropy(logits, torch.where(ignore_mask, 0, target), reduction="none")
        return (ce * ~ignore_mask).sum() / (~ignore_mask).sum().clamp(min=1)


def test_model_hooks_for_phases_and_loss(data):
    train, val = data
    torch.manual_seed(0)
    model = HookedNet()
    snapshots = {}

    def watch(progress):
        if progress["iteration"] in (5, 10):
            snapshots[progress["iteration"]] = (model.first.weight.detach().clone(), model.head.weight.detach().clone())

    result = train_model(model, train, val, spec(iterations=10, val_every=5, augment=False), dims=2, n_classes=2, on_progress=watch)
    assert model.phase_calls == [0, 1]
    assert [r["phase"] for r in result.history] == [0, 1]
    assert len(model.ignore_fractions) == 10
    # slices are 32 x 32 on a 32 x 32 canvas: nothing is padding, every sampled slice is annotated
    assert all(f == 0 for f in model.ignore_fractions)
    # phase 1 froze the first layer (the optimiser was rebuilt without it) but trained the head
    assert torch.equal(snapshots[5][0], snapshots[10][0])
    assert not torch.equal(snapshots[5][1], snapshots[10][1])


def test_bad_inputs_are_refused(make_net, data):
    train, val = data
    with pytest.raises(ValueError, match="patch_size"):
        train_model(make_net(3), train, val, spec(), dims=3, n_classes=2)
    with pytest.raises(ValueError, match="dims"):
        train_model(make_net(2), train, val, spec(), dims=4, n_classes=2)
    with pytest.raises(ValueError, match="sampling group"):
        spec(sampling={"lesion": 1.0})


def test_without_validation_final_weights_are_kept(make_net, data):
    train, _ = data
    result = train_model(make_net(2), train, [], spec(iterations=4, val_every=2), dims=2, n_classes=2)
    assert math.isnan(result.best_val_dice)
    assert [r["iteration"] for r in result.history] == [2, 4]
    assert all(np.isnan(r["val_dice"]) for r in result.history)


def test_core_runs_phases_with_extra_losses_and_callbacks():
    from slicebudget.training.fit import Phase, fit

    w = torch.nn.Parameter(torch.tensor([1.0]))
    started, seen = [], []

    def sgd():
        return torch.optim.SGD([w], lr=0.1), None

    phases = [Phase(2, sgd, start=lambda: started.append(0)),
              Phase(0, lambda: pytest.fail("an empty phase builds no optimiser"), start=lambda: started.append(1)),
              Phase(1, sgd, start=lambda: started.append(2))]
    fit(phases, lambda step: (w * 0).sum(), extra_losses=[lambda step: (w ** 2).sum()],
        callbacks=[lambda step, loss: seen.append((step.iteration, step.phase, step.step, round(loss.item(), 6)))])
    assert started == [0, 1, 2]
    # the main loss is flat: only the extra loss w^2 moves w, by SGD w <- w - 0.1 * 2w = 0.8 w per step
    assert seen == [(1, 0, 0, 1.0), (2, 0, 1, 0.64), (3, 2, 0, 0.4096)]
    assert w.item() == pytest.approx(0.8 ** 3)


def test_core_refuses_a_non_finite_loss_before_stepping():
    from slicebudget.training import TrainingDiverged
    from slicebudget.training.fit import Phase, fit

    w = torch.nn.Parameter(torch.tensor([1.0]))
    with pytest.raises(TrainingDiverged, match="at iteration 1"):
        fit([Phase(1, lambda: (torch.optim.SGD([w], lr=0.1), None))], lambda step: w.sum() * float("nan"))
    assert w.item() == 1.0
