"""The 2D zoo from segmentation-models-pytorch: U-Net, FPN, DeepLabV3+ and SegFormer.

Every network starts from scratch (``encoder_weights=None``): nothing can be downloaded here, and
pretrained ImageNet weights would not fit one-channel CT anyway. The CNNs default to a small
ResNet-18 encoder; SegFormer takes a Mix Transformer encoder ``mit_b0`` .. ``mit_b3``.

Two adjustments to the library's networks, both small:
- Inputs whose size the encoder stride does not divide are zero-padded and the logits cropped back
  (smp itself refuses them); every axis is padded to at least twice the stride, so the deepest
  feature map is never 1 x 1, where BatchNorm cannot train on a batch of one.
- A U-Net with a shallower encoder (``encoder_depth`` 3 or 4) gets the shallowest widths of smp's
  default decoder, (64, 32, 16) for depth 3: smp itself refuses any depth but 5 unless it is handed
  one decoder width per stage. The shallow stages keep the widths they have in the default network,
  and the network is several times cheaper on small slices (stride 8 instead of 32, so a 32-pixel
  slice is no longer padded to 64).
- DeepLabV3+'s image-pooling branch normalises a 1 x 1 map with BatchNorm, which fails for a batch
  of one in training; it gets a GroupNorm instead, which is defined for any batch size.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from slicebudget.errors import UserError
from slicebudget.models.padding import crop_to_size, pad_to_multiple

SMP_ARCHITECTURES = {"unet": "unet", "fpn": "fpn", "deeplabv3plus": "deeplabv3plus", "segformer": "segformer"}
DEFAULT_CNN_ENCODER = "resnet18"
DEFAULT_SEGFORMER_ENCODER = "mit_b0"
SEGFORMER_ENCODERS = ("mit_b0", "mit_b1", "mit_b2", "mit_b3")
CNN_ENCODERS = ("resnet18", "resnet34")
UNET_DECODER_CHANNELS = (256, 128, 64, 32, 16)  # smp's default for encoder_depth 5, deepest first


class SmpSegmenter(nn.Module):
    """An smp network behind a forward that accepts any spatial size (pad, run, crop back)."""

    def __init__(self, network: nn.Module, stride: int):
        super().__init__()
        self.network = network
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.stride, minimum=2 * self.stride)
        return crop_to_size(self.network(padded), size)


def _replace_pooling_batchnorm(network: nn.Module) -> None:
    """Swap BatchNorm for GroupNorm in DeepLabV3+'s ASPP image-pooling branch (see module docstring)."""
    from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPPPooling

    for module in network.modules():
        if isinstance(module, ASPPPooling):
            for index, layer in enumerate(module):
                if isinstance(layer, nn.BatchNorm2d):
                    channels = layer.num_features
                    module[index] = nn.GroupNorm(num_groups=min(32, channels), num_channels=channels)


def _import_smp():
    """segmentation_models_pytorch, imported without the FutureWarning timm's HRNet module raises on
    import (``torch.jit.interface`` is deprecated): it is about code we never call, and every study
    printed it to the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.interface` is deprecated", category=FutureWarning)
        import segmentation_models_pytorch as smp
    return smp


def build_smp_model(
    architecture: str,
    in_channels: int,
    classes: int,
    encoder: str | None = None,
    encoder_depth: int | None = None,
) -> SmpSegmenter:
    """One smp network, randomly initialised, wrapped to accept any input size.

    ``encoder`` defaults to ``resnet18`` for the CNNs and ``mit_b0`` for SegFormer; any smp encoder
    name is accepted for the CNNs (resnet18 and resnet34 are the ones the study uses).
    """
    smp = _import_smp()
    if architecture not in SMP_ARCHITECTURES:
        raise UserError(f"unknown smp architecture {architecture!r}; valid: {', '.join(SMP_ARCHITECTURES)}")
    if architecture == "segformer":
        encoder = encoder or DEFAULT_SEGFORMER_ENCODER
        if encoder not in SEGFORMER_ENCODERS:
            raise UserError(f"segformer encoder must be one of {', '.join(SEGFORMER_ENCODERS)}, got {encoder!r}")
    else:
        encoder = encoder or DEFAULT_CNN_ENCODER
    kwargs = {} if encoder_depth is None else {"encoder_depth": int(encoder_depth)}
    if architecture == "unet" and encoder_depth is not None and 1 <= int(encoder_depth) <= len(UNET_DECODER_CHANNELS):
        kwargs["decoder_channels"] = UNET_DECODER_CHANNELS[-int(encoder_depth):]
    try:
        network = smp.create_model(
            SMP_ARCHITECTURES[architecture],
            encoder_name=encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=classes,
            **kwargs,
        )
    except (KeyError, ValueError) as exc:
        raise UserError(f"cannot build smp {architecture} with encoder {encoder!r}: {exc}") from None
    if architecture == "deeplabv3plus":
        _replace_pooling_batchnorm(network)
    stride = int(getattr(network.encoder, "output_stride", 32))
    return SmpSegmenter(network, stride)
