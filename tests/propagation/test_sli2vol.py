"""The learned propagator: vectorised affinity, edge input, model files, training, the stop rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicebudget.errors import UserError
from slicebudget.propagation import propagate
from slicebudget.propagation.sli2vol import (
    Sli2VolConfig,
    TrainingSettings,
    default_model_path,
    load_model,
    save_model,
    train_feature_net,
)
from slicebudget.propagation.sli2vol.edges import edge_profile
from slicebudget.propagation.sli2vol.network import carry, local_affinity, naive_affinity
from slicebudget.propagation.sli2vol.sparse_carry import sparse_carry
from slicebudget.volume import SparseAnnotation


@pytest.mark.parametrize(("shape", "window"), [((6, 7), 5), ((11, 13), 5), ((9, 17), 3)])
def test_vectorised_affinity_matches_naive_reference(shape, window):
    gen = torch.Generator().manual_seed(0)
    dst = torch.nn.functional.normalize(torch.randn(2, 4, *shape, generator=gen), dim=1)
    src = torch.nn.functional.normalize(torch.randn(2, 4, *shape, generator=gen), dim=1)
    fast = local_affinity(dst, src, window=window, temperature=0.1)
    slow = naive_affinity(dst, src, window=window, temperature=0.1)
    torch.testing.assert_close(fast.as_windows(), slow, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast.as_windows().sum(dim=1), torch.ones(2, *shape))
    # Carrying values equals the affinity-weighted sum over each window, done pixel by pixel.
    values = torch.randn(2, 3, *shape, generator=gen)
    r = window // 2
    padded = torch.nn.functional.pad(values, (r, r, r, r))
    expected = torch.zeros_like(values)
    for y in range(shape[0]):
        for x in range(shape[1]):
            patch = padded[:, :, y : y + window, x : x + window].reshape(2, 3, -1)
            expected[:, :, y, x] = (patch * slow[:, None, :, y, x]).sum(dim=2)
    torch.testing.assert_close(carry(fast, values), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("shape", "window"), [((37, 29), 13), ((20, 45), 5), ((5, 70), 7)])
def test_sparse_carry_equals_dense_carry(shape, window):
    # Scoring only tiles near a class boundary must not change the carried mask: tiles whose source
    # region is constant receive that constant exactly, including a class touching the slice corner.
    gen = torch.Generator().manual_seed(1)
    dst = torch.nn.functional.normalize(torch.randn(1, 8, *shape, generator=gen), dim=1)
    src = torch.nn.functional.normalize(torch.randn(1, 8, *shape, generator=gen), dim=1)
    h, w = shape
    labels = torch.zeros(h, w, dtype=torch.long)
    labels[h // 3 : h // 2 + 1, w // 4 : w // 2] = 1
    labels[-2:, -3:] = 2
    onehot = torch.nn.functional.one_hot(labels, 3).permute(2, 0, 1)[None].float()
    dense = carry(local_affinity(dst, src, window=window, temperature=0.05), onehot)
    sparse = sparse_carry(dst, src, onehot, window=window, temperature=0.05)
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)
    # Nothing to decide anywhere (one class only): the mask comes back unchanged, no scoring needed.
    flat = torch.zeros(1, 3, *shape)
    flat[:, 0] = 1.0
    assert torch.equal(sparse_carry(dst, src, flat, window=window, temperature=0.05), flat)


def test_matching_features_carry_a_shifted_mask_exactly():
    # Features that identify each pixel uniquely: the affinity must find the one-pixel shift.
    gen = torch.Generator().manual_seed(4)
    src = torch.nn.functional.normalize(torch.randn(1, 32, 12, 12, generator=gen), dim=1)
    dst = torch.roll(src, shifts=(1, -2), dims=(2, 3))  # content moved down 1, left 2
    mask = torch.zeros(1, 1, 12, 12)
    mask[:, :, 4:8, 5:9] = 1.0
    moved = carry(local_affinity(dst, src, window=7, temperature=0.01), mask)
    torch.testing.assert_close(moved[..., 2:10, 2:10], torch.roll(mask, (1, -2), (2, 3))[..., 2:10, 2:10], atol=1e-3, rtol=0)


def test_edge_profile_ignores_brightness_and_contrast():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 12, 12, generator=gen)
    base = edge_profile(x)
    assert base.shape == (1, 8, 12, 12)
    # A strong-contrast scaled and shifted copy has (almost) the same unit edge profile.
    torch.testing.assert_close(edge_profile(10.0 * x + 3.0), edge_profile(10.0 * x), atol=1e-5, rtol=0)
    assert float((edge_profile(10.0 * x) - base).abs().max()) < 0.5


def test_shipped_model_loads_without_network():
    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 5_000_000
    net, config = load_model()
    assert isinstance(config, Sli2VolConfig)
    out = net(edge_profile(torch.rand(1, 1, 16, 16)))
    assert out.shape == (1, config.feature_dim, 16, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(1, 16, 16))


def test_missing_or_foreign_model_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "none.pt")
    net, config = load_model()
    path = save_model(net, config, tmp_path / "m.pt", {"note": "test"})
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    with pytest.raises(UserError, match="version 99"):
        load_model(tmp_path / "v99.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a readable"):
        load_model(tmp_path / "junk.pt")


def test_training_is_reproducible_and_lowers_loss(make_blob):
    image, _ = make_blob(depth=8, size=24)
    settings = TrainingSettings(iterations=12, batch=2, crop=16, learning_rate=3e-3, seed=3)
    config = Sli2VolConfig(channels=8, feature_dim=8, dilations=(1, 2), window=7)
    first = train_feature_net([image], config, settings)
    second = train_feature_net([image], config, settings)
    for (k, a), (_, b) in zip(first.net.state_dict().items(), second.net.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    assert np.mean(first.losses[-4:]) < np.mean(first.losses[:4])


def test_stop_rule_follows_the_image_beyond_the_outermost_slice(make_blob, measure_iou):
    image, dense = make_blob(depth=20, size=40, first=4, last=15, core=False)
    annotation = SparseAnnotation.from_dense(dense, [9])
    result = propagate(image, annotation, method="sli2vol", device="cpu")
    present = [bool(result.labels[j].any()) for j in range(20)]
    assert not any(present[:3]) and not any(present[17:]), present  # stopped where the blob ends
    assert all(present[6:14]), present  # carried through the blob
    assert measure_iou(result.labels > 0, dense > 0) > 0.75
    assert result.provenance[0] == "stopped" and result.provenance[19] == "stopped"
    assert result.signal[10] > result.signal[14] > 0.0  # the chain's trust fades away from the human slice


def test_max_beyond_stops_chains_past_the_outermost_slice(make_blob):
    image, dense = make_blob(depth=20, size=40, first=4, last=15, core=False)
    annotation = SparseAnnotation.from_dense(dense, [9, 11])
    result = propagate(image, annotation, method="sli2vol", device="cpu", max_beyond=2)
    reached = [j for j in range(20) if result.labels[j].any()]
    assert reached == [7, 8, 9, 10, 11, 12, 13], reached
    assert list(result.provenance[[7, 8, 10, 12, 13]]) == ["learned"] * 5
    assert set(result.provenance[[*range(0, 7), *range(14, 20)]]) == {"stopped"}


def test_fallback_none_leaves_lost_matches_to_the_chains_and_bad_values_are_refused(make_blob):
    image, dense = make_blob(depth=12, size=24, first=2, last=9, core=False)
    annotation = SparseAnnotation.from_dense(dense, [3, 8])
    result = propagate(image, annotation, method="sli2vol", device="cpu", fallback="none")
    assert "interpolation" not in set(result.provenance)
    with pytest.raises(UserError, match="fallback 'linear'; choose from sdf, none"):
        propagate(image, annotation, method="sli2vol", fallback="linear")
    with pytest.raises(UserError, match="max_beyond"):
        propagate(image, annotation, method="sli2vol", max_beyond=-1)
