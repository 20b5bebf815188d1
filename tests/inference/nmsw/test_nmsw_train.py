from __future__ import annotations

import numpy as np
import pytest
import torch

from slicebudget.errors import UserError
from slicebudget.inference.nmsw import NMSWInferer
from slicebudget.models.nmsw import build_nmsw_model, load_nmsw, save_nmsw
from slicebudget.training.nmsw import train_nmsw
from slicebudget.models.nmsw.patches import select_patches
from slicebudget.models.nmsw.topk import gumbel_topk
from slicebudget.training.nmsw import nmsw_step
from slicebudget.training.spec import TrainingCase
from slicebudget.volume import SparseAnnotation

from ...conftest import cored_ball_labels as blob_labels  # noqa: TID252
from .conftest import CLASSES, PATCH, VOLUME, TinyNet, make_model


def cases(n: int = 2, annotated_every: int = 1) -> list[TrainingCase]:
    rng = np.random.default_rng(0)
    labels = blob_labels()
    out = []
    for i in range(n):
        image = (labels * 1.5 + rng.normal(scale=0.3, size=VOLUME)).astype(np.float32)[None]
        annotation = SparseAnnotation.from_dense(labels, range(0, VOLUME[0], annotated_every))
        out.append(TrainingCase(f"case{i}", image, annotation))
    return out


def test_patch_logit_head_gets_gradient_through_the_straight_through_estimator(model, volume):
    grid = model.grid(VOLUME)
    coarse, patch_logits = model.global_forward(volume, grid)
    sample = gumbel_topk(patch_logits[0], 2, tau=1.0, generator=torch.Generator().manual_seed(0))
    patches = select_patches(volume[0], grid, sample.selection, sample.indices)
    loss = model.local_net(patches).square().mean()  # depends on the patches only, not on the coarse output
    loss.backward()
    head = model.global_net.body[-1].weight.grad  # (classes + 1, width, 1, 1, 1)
    assert head[CLASSES].abs().sum() > 0  # the importance channel, i.e. the patch-logit head
    assert head[:CLASSES].abs().sum() == 0  # the coarse-segmentation rows play no part in this loss
    assert model.patch_head.weight.grad.abs().sum() > 0


def test_unannotated_voxels_do_not_change_the_loss(model, volume):
    target = torch.from_numpy(blob_labels().astype(np.int64))
    mask = torch.zeros(VOLUME, dtype=torch.bool)
    mask[::4] = True
    other = target.clone()
    other[1::4] = 2  # differs only on unannotated slices

    def loss_for(t):
        return nmsw_step(model, volume, t, mask, 1.0, 3, 1, 1e-4, torch.Generator().manual_seed(0),
                         np.random.default_rng(0))[0]

    assert torch.isfinite(loss_for(target))
    assert loss_for(target).item() == pytest.approx(loss_for(other).item(), abs=1e-6)


def test_training_anneals_tau_leaves_the_input_alone_and_the_checkpoint_restores_it(tmp_path, model, volume):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_nmsw(model, cases(annotated_every=2), iterations=6, learning_rate=1e-2, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    taus = [r["tau"] for r in result.history]
    assert taus[0] == pytest.approx(2.0) and taus[-1] == pytest.approx(0.33)
    assert all(a > b for a, b in zip(taus, taus[1:]))
    assert result.training["tau"] == pytest.approx(0.33)
    assert not torch.equal(result.model.class_logit, model.class_logit)
    path = save_nmsw(result.model, tmp_path / "nmsw.pt", result.training)
    loaded, training = load_nmsw(path, local_net=TinyNet(1, CLASSES), global_net=TinyNet(1, CLASSES + 1))
    assert training["tau"] == pytest.approx(0.33) and training["tau_start"] == 2.0
    assert torch.equal(NMSWInferer(loaded, 5)(volume), NMSWInferer(result.model, 5)(volume))
    again = train_nmsw(model, cases(annotated_every=2), iterations=6, learning_rate=1e-2, seed=0)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in result.history]  # seeded


def test_frozen_local_network_stays_put():
    model = make_model()
    result = train_nmsw(model, cases(1), iterations=2, train_local=False)
    for a, b in zip(model.local_net.parameters(), result.model.local_net.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(model.global_net.body[0].weight, result.model.global_net.body[0].weight)


def test_checkpoint_for_another_backbone_or_class_count_is_refused(tmp_path):
    model = build_nmsw_model("unet3d", 1, CLASSES, PATCH, {"base_channels": 2, "depth": 2})
    path = save_nmsw(model, tmp_path / "nmsw.pt", {"tau": 0.5})
    loaded, training = load_nmsw(path, backbone="unet3d", classes=CLASSES)
    assert loaded.backbone_params == {"base_channels": 2, "depth": 2} and training == {"tau": 0.5}
    with pytest.raises(UserError, match="backbone 'unet3d'.*'lightmedseg'"):
        load_nmsw(path, backbone="lightmedseg")
    with pytest.raises(UserError, match="classes 3.*4"):
        load_nmsw(path, classes=4)
    with pytest.raises(UserError, match="not found"):
        load_nmsw(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read"):
        load_nmsw(tmp_path / "junk.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt", "nmsw.pt"]  # nothing half-written
