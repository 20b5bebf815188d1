"""Carrying a mask through the local affinity, scoring only the tiles where the answer is open.

The affinity's weights of one target pixel sum to one, and weights on source pixels outside the slice
are exactly zero (their logits underflow in the softmax). So a target tile whose whole source region
holds one constant value (inside the slice) receives exactly that value, whatever the features say.
For a mask that means every tile far from a class boundary: only a band of tiles along the
boundaries needs scores and a softmax. On a 512 x 512 slice with an organ-sized mask that band is a
small share of all tiles, and scoring is what dominated the cost of a propagation step.

The result equals :func:`slicebudget.propagation.sli2vol.network.carry` of the full
:func:`~slicebudget.propagation.sli2vol.network.local_affinity` up to float rounding (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slicebudget.propagation.sli2vol.network import TILE, _tile_counts, window_bias


def _regions_by_tile(src: torch.Tensor, window: int, pad_mode: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, C * S^2, L): the source region of every target tile, unfolded."""
    h, w = src.shape[-2:]
    r = window // 2
    tiles_y, tiles_x = _tile_counts(h, w)
    padding = (r, r + tiles_x * TILE - w, r, r + tiles_y * TILE - h)
    padded = F.pad(src, padding, mode=pad_mode) if pad_mode == "replicate" else F.pad(src, padding)
    return F.unfold(padded, kernel_size=TILE + window - 1, stride=TILE)


def sparse_carry(
    dst: torch.Tensor,
    src: torch.Tensor,
    values: torch.Tensor,
    window: int,
    temperature: float,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Affinity-weighted copy of ``values`` (1, V, H, W) from the source slice onto the target.

    ``dst``/``src``: (1, C, H, W) features of target and source slice; ``bias``: :func:`window_bias`
    for this size (computed here when None). Returns (1, V, H, W).
    """
    if dst.shape[0] != 1:
        raise ValueError("sparse_carry works on one slice pair at a time")
    _, c, h, w = dst.shape
    v = values.shape[1]
    side = TILE + window - 1
    tiles_y, tiles_x = _tile_counts(h, w)
    # Replicate padding: values outside the slice get zero weight, so repeating the border keeps a
    # constant border tile constant (zero padding would mark every border tile as open).
    value_regions = _regions_by_tile(values, window, "replicate").view(v, side * side, -1)  # (V, S^2, L)
    open_tiles = ((value_regions.amax(dim=1) - value_regions.amin(dim=1)) > 0).any(dim=0)  # (L,)
    out = value_regions[:, 0, :].T[:, None, :].expand(-1, TILE * TILE, -1).contiguous()  # (L, T^2, V)
    index = torch.nonzero(open_tiles).flatten()
    if index.numel():
        if bias is None:
            bias = window_bias(h, w, window, dst.device)
        # Unfold features only inside the bounding box of the open tiles (in tile units): unfolding
        # and gathering regions of the whole slice would cost more than scoring the open ones.
        grid = open_tiles.view(tiles_y, tiles_x)
        rows, cols = torch.nonzero(grid.any(dim=1)).flatten(), torch.nonzero(grid.any(dim=0)).flatten()
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        box_open = grid[y0:y1, x0:x1].reshape(-1)
        local = torch.nonzero(box_open).flatten()  # open tiles, numbered inside the box
        r = window // 2
        dst_padded = F.pad(dst, (0, tiles_x * TILE - w, 0, tiles_y * TILE - h))
        dst_box = dst_padded[..., y0 * TILE : y1 * TILE, x0 * TILE : x1 * TILE]
        dst_tiles = F.unfold(dst_box, kernel_size=TILE, stride=TILE).index_select(-1, local)
        # Dividing the small target tiles by the temperature costs less than dividing all scores.
        dst_tiles = (dst_tiles.view(c, TILE * TILE, -1) / temperature).permute(2, 1, 0)  # (A, T^2, C)
        src_padded = F.pad(src, (r, r + tiles_x * TILE - w, r, r + tiles_y * TILE - h))
        src_box = src_padded[..., y0 * TILE : (y1 - 1) * TILE + side, x0 * TILE : (x1 - 1) * TILE + side]
        feature_regions = F.unfold(src_box, kernel_size=side, stride=TILE).index_select(-1, local)
        feature_regions = feature_regions.view(c, side * side, -1).permute(2, 0, 1)  # (A, C, S^2)
        scores = torch.baddbmm(bias[0].index_select(0, index), dst_tiles.contiguous(), feature_regions.contiguous())
        weights = torch.softmax(scores, dim=-1)  # (A, T^2, S^2)
        open_values = value_regions.index_select(-1, index).permute(2, 1, 0).contiguous()  # (A, S^2, V)
        out[index] = torch.bmm(weights, open_values)
    out = out.permute(2, 1, 0).reshape(1, v * TILE * TILE, -1)
    full = F.fold(out, (tiles_y * TILE, tiles_x * TILE), kernel_size=TILE, stride=TILE)
    return full[:, :, :h, :w]
