"""Which slices to suggest, and how the marks and the overlay show them."""

from __future__ import annotations

import numpy as np

from slicebudget.errors import UserError
from slicebudget.selection import POLICIES, get_policy, n_slices_for_density
from slicebudget.volume import Volume

from napari_slicebudget.logic.ledger import ACCEPTED, ANNOTATED, EMPTY, NONE, PROPAGATED, SUGGESTED, SliceLedger

POLICY_NAMES = tuple(POLICIES)

# RGBA edge colours of the slice outlines: warm = still to do, green = done, blue = machine-made.
STATUS_COLORS = {
    SUGGESTED: (1.0, 0.65, 0.0, 1.0),
    ANNOTATED: (0.2, 0.85, 0.3, 1.0),
    EMPTY: (0.55, 0.85, 0.55, 1.0),
    PROPAGATED: (0.3, 0.6, 1.0, 1.0),
    ACCEPTED: (0.1, 0.4, 0.9, 1.0),
    NONE: (0.6, 0.6, 0.6, 1.0),
}


def resolve_slice_count(depth: int, density: float | None = None, count: int | None = None) -> int:
    """Slices to suggest: an explicit ``count`` wins; otherwise ``density`` of ``depth`` (at least 1)."""
    if count is not None:
        count = int(count)
        if not 1 <= count <= depth:
            raise UserError(f"slice count must be between 1 and the volume's {depth} slices, got {count}")
        return count
    if density is None:
        raise UserError("give a density or a slice count")
    return n_slices_for_density(depth, density)


def suggest_slices(volume: Volume | np.ndarray, policy: str, n_slices: int, seed: int) -> np.ndarray:
    """Sorted slice indices (axis 0) the named policy suggests; same seed, same slices."""
    array = volume.array if isinstance(volume, Volume) else np.asarray(volume)
    if array.ndim != 3:
        raise UserError(f"the slice planner needs a 3D volume, got shape {array.shape}")
    return get_policy(policy).select(array, int(n_slices), int(seed))


def warm_up() -> None:
    """Pay the selection code's one-time costs (lazy imports, BLAS start-up: seconds on a loaded
    machine) before the annotator asks, so the first suggestions come as fast as later ones."""
    tiny = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8) ** 1.5
    for name in POLICY_NAMES:
        get_policy(name).select(tiny, 2, 0)


def slice_outlines(slices, shape: tuple[int, ...]) -> list[np.ndarray]:
    """One rectangle (4 corners, data coordinates) framing each given slice, inset half a voxel."""
    _, h, w = shape[-3:]
    lo_r, lo_c, hi_r, hi_c = 0.5, 0.5, max(h - 1.5, 0.5), max(w - 1.5, 0.5)
    return [np.array([[s, lo_r, lo_c], [s, lo_r, hi_c], [s, hi_r, hi_c], [s, hi_r, lo_c]], dtype=float)
            for s in slices]


def outline_colors(ledger: SliceLedger) -> list[tuple[float, float, float, float]]:
    statuses = ledger.statuses()
    return [STATUS_COLORS[statuses[s]] for s in ledger.suggested]


def overlay_text(ledger: SliceLedger | None, current: int) -> str:
    """The line shown over the canvas while scrolling."""
    if ledger is None:
        return ""
    status = ledger.status(current) if 0 <= current < ledger.depth else NONE
    mark = "suggested slice" if current in ledger.suggested else "slice"
    nxt = ledger.next_unannotated(current)
    tail = f" | next to do: {nxt}" if nxt is not None else " | all suggested slices done"
    return f"{mark} {current} (0..{ledger.depth - 1}): {status}\n{ledger.progress_text()}{tail}"


def slice_list_rows(ledger: SliceLedger) -> list[tuple[int, str]]:
    """(slice, status) rows for the list: suggested slices plus any other annotated or machine-made slice."""
    statuses = ledger.statuses()
    shown = set(ledger.suggested) | {i for i, s in enumerate(statuses) if s != NONE}
    return [(i, statuses[i]) for i in sorted(shown)]
