from __future__ import annotations

import numpy as np
import pytest
import torch

from slicebudget.models.nmsw.topk import (
    annealed_tau,
    deterministic_topk,
    distribution_entropy,
    gumbel_topk,
)

PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)


def inclusion_probability_top2(p: np.ndarray) -> np.ndarray:
    """P(i among two draws without replacement, probability proportional to p)."""
    out = p.copy()
    for i in range(len(p)):
        out[i] += sum(p[j] * p[i] / (1 - p[j]) for j in range(len(p)) if j != i)
    return out


def test_samples_are_without_replacement_and_follow_the_distribution():
    draws = 20000
    logits = PROBS.log().expand(draws, -1)
    sample = gumbel_topk(logits, 2, tau=0.5, generator=torch.Generator().manual_seed(0))
    indices = sample.indices.numpy()
    assert indices.shape == (draws, 2)
    assert (indices[:, 0] != indices[:, 1]).all()
    first = np.bincount(indices[:, 0], minlength=4) / draws
    assert np.allclose(first, PROBS.numpy(), atol=0.015)  # Gumbel-max: the first draw is ~ p
    included = np.bincount(indices.ravel(), minlength=4) / draws
    expected = inclusion_probability_top2(PROBS.numpy())
    assert np.allclose(included, expected, atol=0.015)
    assert list(np.argsort(-included)) == [0, 1, 2, 3]


def test_k_at_least_n_takes_every_position_once():
    sample = gumbel_topk(torch.randn(6), 10, tau=1.0, generator=torch.Generator().manual_seed(1))
    assert sorted(sample.indices.tolist()) == list(range(6))


def test_selection_is_onehot_times_softhot_and_its_gradient_reaches_all_logits():
    logits = torch.randn(12, requires_grad=True)
    sample = gumbel_topk(logits, 3, tau=2.0, generator=torch.Generator().manual_seed(2))
    for k, index in enumerate(sample.indices.tolist()):
        expected = torch.zeros(12)
        expected[index] = sample.softhot[k, index].detach()
        assert torch.allclose(sample.selection[k].detach(), expected, atol=1e-6)
        assert 0 < sample.weights[k].item() <= 1
    # a later draw never puts soft mass on an earlier choice (Eq. 4)
    assert sample.softhot[1, sample.indices[0]].item() == 0
    assert sample.softhot[2, sample.indices[:2]].abs().sum().item() == 0
    (grad,) = torch.autograd.grad((sample.weights * torch.tensor([1.0, 2.0, 3.0])).sum(), logits)
    assert (grad != 0).all()


def test_same_generator_seed_same_sample_and_evaluation_topk_has_no_noise():
    logits = torch.randn(30)
    a = gumbel_topk(logits, 5, 1.0, torch.Generator().manual_seed(7)).indices
    b = gumbel_topk(logits, 5, 1.0, torch.Generator().manual_seed(7)).indices
    assert torch.equal(a, b)
    top = deterministic_topk(logits, 5)
    assert torch.equal(top, torch.argsort(logits, descending=True)[:5])
    assert torch.equal(deterministic_topk(logits, 5), top)
    assert deterministic_topk(logits, 99).numel() == 30
    with pytest.raises(ValueError):
        deterministic_topk(logits, 0)
    with pytest.raises(ValueError):
        gumbel_topk(logits, 0, 1.0)


def test_tau_schedule_runs_from_2_down_to_0_33_monotonically():
    steps = 50
    taus = [annealed_tau(s, steps) for s in range(steps)]
    assert taus[0] == pytest.approx(2.0) and taus[-1] == pytest.approx(0.33)
    assert all(a > b for a, b in zip(taus, taus[1:]))
    assert annealed_tau(0, 1) == pytest.approx(0.33)
    assert annealed_tau(500, steps) == pytest.approx(0.33)


def test_entropy_of_uniform_is_log_n():
    assert distribution_entropy(torch.zeros(8)).item() == pytest.approx(np.log(8))
