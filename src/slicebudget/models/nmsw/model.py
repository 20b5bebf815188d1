"""The NMSW model: a global network on the downsampled volume, a local network on chosen patches,
and the per-class aggregation weight of Eq. 6.

The global network is any registered 3D backbone built with ``classes + 1`` output channels: the
first ``classes`` are the coarse segmentation logits, the last is a free importance map. Each
patch is described by the means, over its low-resolution footprint, of the coarse class
probabilities, their normalised entropy and the importance map (one summed-area table scores all N
patches, no architecture-specific head), and a learned linear patch head turns that into the
patch's logit: the distribution p(z | y_low) of the paper's Fig. 2. The head starts as "importance
map only" (a flat distribution, as in the paper); its few weights are what lets a short CPU run
learn where to look (the training loop gives them a larger learning rate).

Checkpoints record the backbone name and parameters, the class and channel counts, the patch
geometry and the temperature schedule, and are checked on load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from slicebudget.errors import UserError
from slicebudget.models.nmsw.onednn import OneDNNConvolutions
from slicebudget.models.nmsw.patches import PatchGrid, box_means, low_resolution_boxes, patch_grid
from slicebudget.models.outputs import logits_from_output

CHECKPOINT_FORMAT = "slicebudget-nmsw-1"


class NMSWModel(nn.Module):
    """Global + local networks and the class weight; geometry and provenance kept as plain attributes.

    ``global_scale``: per-axis factor from the full volume to the global network's input.
    ``backbone`` / ``backbone_params`` / ``global_params``: how the networks were built (``None``
    for networks built by hand, e.g. in tests); stored in checkpoints and checked on load.
    """

    def __init__(
        self,
        global_net: nn.Module,
        local_net: nn.Module,
        in_channels: int,
        classes: int,
        patch_size: Sequence[int],
        overlap: float = 0.5,
        global_scale: Sequence[float] = (0.5, 0.5, 0.5),
        backbone: str | None = None,
        backbone_params: dict | None = None,
        global_params: dict | None = None,
    ):
        super().__init__()
        if classes < 2:
            raise ValueError(f"classes counts background too and must be >= 2, got {classes}")
        if len(tuple(patch_size)) != 3 or len(tuple(global_scale)) != 3:
            raise ValueError("patch_size and global_scale need three values (D, H, W)")
        if not all(0 < s <= 1 for s in global_scale):
            raise ValueError(f"global_scale values must be in (0, 1], got {tuple(global_scale)}")
        self.global_net = global_net
        self.local_net = local_net
        self.in_channels = int(in_channels)
        self.classes = int(classes)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.overlap = float(overlap)
        self.global_scale = tuple(float(s) for s in global_scale)
        self.backbone = backbone
        self.backbone_params = dict(backbone_params or {})
        self.global_params = dict(global_params or {})
        # sigma(0) = 0.5: local and global start on an equal footing; training moves each class.
        self.class_logit = nn.Parameter(torch.zeros(self.classes))
        # Patch logit = linear map of the patch's mean [class probabilities, normalised entropy,
        # importance] from the global network: p(z | y_low). It starts as the importance alone.
        self.patch_head = nn.Linear(self.classes + 2, 1)
        with torch.no_grad():
            self.patch_head.weight.zero_()
            self.patch_head.weight[0, -1] = 1.0
            self.patch_head.bias.zero_()

    def grid(self, volume_shape: Sequence[int]) -> PatchGrid:
        return patch_grid(volume_shape, self.patch_size, self.overlap)

    def low_shape(self, volume_shape: Sequence[int]) -> tuple[int, int, int]:
        return tuple(max(1, round(s * f)) for s, f in zip(volume_shape, self.global_scale, strict=True))

    def global_forward(self, image: torch.Tensor, grid: PatchGrid) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, D, H, W) at full resolution -> (coarse logits (B, K, *low), patch logits (B, N))."""
        low = F.interpolate(image, size=self.low_shape(image.shape[2:]), mode="trilinear", align_corners=False)
        # One volume, few channels: PyTorch would pick its im2col path, whose column buffer costs
        # more memory than a whole sliding window; oneDNN needs none (see the onednn module).
        with OneDNNConvolutions():
            output = logits_from_output(self.global_net(low))
        if output.shape[1] != self.classes + 1:
            raise ValueError(
                f"the global network returned {output.shape[1]} channels; it must return classes + 1 "
                f"= {self.classes + 1} (coarse logits and the importance map)"
            )
        coarse = output[:, : self.classes]
        log_probs = torch.log_softmax(coarse, dim=1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=1, keepdim=True) / math.log(self.classes)
        features = torch.cat([log_probs.exp(), entropy, output[:, self.classes :]], dim=1)
        boxes = low_resolution_boxes(grid, output.shape[2:]).to(output.device)
        patch_features = box_means(features, boxes)  # (B, classes + 2, N)
        patch_logits = self.patch_head(patch_features.transpose(1, 2))[..., 0]
        return coarse, patch_logits

    def upsample(self, coarse: torch.Tensor, volume_shape: Sequence[int]) -> torch.Tensor:
        """Coarse logits (B, K, *low) -> (B, K, *volume_shape), trilinear."""
        return F.interpolate(coarse, size=tuple(volume_shape), mode="trilinear", align_corners=False)

    def describe(self) -> dict:
        """What a checkpoint records besides the weights."""
        return {
            "backbone": self.backbone,
            "backbone_params": dict(self.backbone_params),
            "global_params": dict(self.global_params),
            "in_channels": self.in_channels,
            "classes": self.classes,
            "patch_size": list(self.patch_size),
            "overlap": self.overlap,
            "global_scale": list(self.global_scale),
        }


def build_nmsw_model(
    backbone: str,
    in_channels: int,
    classes: int,
    patch_size: Sequence[int],
    backbone_params: dict | None = None,
    global_params: dict | None = None,
    local_net: nn.Module | None = None,
    overlap: float = 0.5,
    global_scale: Sequence[float] = (0.5, 0.5, 0.5),
) -> NMSWModel:
    """NMSW around a registered 3D backbone (``slicebudget.models.create_model``).

    ``local_net``: an already trained backbone to use as the local model (the study's model); when
    ``None`` a fresh one is built from ``backbone_params``. The global network is the same backbone
    with ``global_params`` (default: ``backbone_params``) and ``classes + 1`` outputs.
    """
    from slicebudget.models import create_model

    backbone_params = dict(backbone_params or {})
    global_params = dict(backbone_params if global_params is None else global_params)
    if local_net is None:
        local_net = create_model(backbone, dims=3, in_channels=in_channels, classes=classes, **backbone_params)
    global_net = create_model(backbone, dims=3, in_channels=in_channels, classes=classes + 1, **global_params)
    return NMSWModel(
        global_net, local_net, in_channels, classes, patch_size, overlap, global_scale,
        backbone=backbone, backbone_params=backbone_params, global_params=global_params,
    )


def save_nmsw(model: NMSWModel, path: str | Path, training: dict | None = None) -> Path:
    """Write the weights, geometry, provenance and ``training`` facts (tau schedule...) atomically."""
    from slicebudget.io.atomic import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        **model.describe(),
        "training": dict(training or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict; UserError when it is missing or not an NMSW checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserError("NMSW checkpoint not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserError(f"cannot read NMSW checkpoint ({type(exc).__name__})", path) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"not an NMSW checkpoint (expected format {CHECKPOINT_FORMAT})", path)
    return payload


def load_nmsw(
    path: str | Path,
    backbone: str | None = None,
    classes: int | None = None,
    in_channels: int | None = None,
    local_net: nn.Module | None = None,
    global_net: nn.Module | None = None,
) -> tuple[NMSWModel, dict]:
    """Rebuild an NMSW model from ``path``; return it (eval mode) and the checkpoint's training facts.

    ``backbone`` / ``classes`` / ``in_channels``: what the caller expects; a checkpoint trained for
    something else is refused with a UserError naming both. ``local_net`` / ``global_net``: networks
    to load the weights into, for checkpoints of hand-built networks (``backbone`` None).
    """
    payload = read_checkpoint(path)
    expected = {"backbone": backbone, "classes": classes, "in_channels": in_channels}
    for key, want in expected.items():
        if want is not None and payload.get(key) != want:
            raise UserError(
                f"checkpoint was trained for {key} {payload.get(key)!r}, but {want!r} was asked for; "
                "train NMSW again for this setting",
                path,
            )
    if global_net is None or local_net is None:
        if payload.get("backbone") is None:
            raise UserError("checkpoint holds hand-built networks: pass local_net and global_net to load it", path)
        from slicebudget.models import create_model

        name, n_in, n_cls = payload["backbone"], payload["in_channels"], payload["classes"]
        local_net = local_net or create_model(name, dims=3, in_channels=n_in, classes=n_cls, **payload["backbone_params"])
        global_net = global_net or create_model(
            name, dims=3, in_channels=n_in, classes=n_cls + 1, **payload["global_params"]
        )
    model = NMSWModel(
        global_net, local_net, payload["in_channels"], payload["classes"], payload["patch_size"],
        payload["overlap"], payload["global_scale"], backbone=payload["backbone"],
        backbone_params=payload["backbone_params"], global_params=payload["global_params"],
    )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"checkpoint weights do not fit the networks: {str(exc).splitlines()[0]}", path) from exc
    return model.eval(), dict(payload.get("training", {}))
