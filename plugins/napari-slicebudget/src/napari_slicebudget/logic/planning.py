"""Which slices to suggest, and how the marks and the overlay show them."""

from __future__ import annotations

import numpy as np

from slicebudget.errors import UserError
from slicebudget.selection import POLICIES, get_policy, n_slices_for_density
from slicebudget.volume import Volume

from napari_slicebudget.logic.ledger import (
    HUMAN_EMPTY,
    HUMAN_PAINTED,
    MACHINE_ACCEPTED,
    MACHINE_PROPOSED,
    NOT_ANNOTATED,
    SliceLedger,
)

ADAPTIVE = "adaptive"  # one slice at a time: the next best slice given what is annotated (see logic.propagation)
POLICY_NAMES = (*POLICIES, ADAPTIVE)
TO_DO = "to do"  # a suggested slice nobody has annotated

# RGBA colours of slice outlines and list rows: warm = still to do, green = human, blue = machine-made.
STATUS_COLORS = {
    TO_DO: (1.0, 0.65, 0.0, 1.0),
    HUMAN_PAINTED: (0.2, 0.85, 0.3, 1.0),
    HUMAN_EMPTY: (0.55, 0.85, 0.55, 1.0),
    MACHINE_PROPOSED: (0.3, 0.6, 1.0, 1.0),
    MACHINE_ACCEPTED: (0.1, 0.4, 0.9, 1.0),
    NOT_ANNOTATED: (0.6, 0.6, 0.6, 1.0),
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
    for name in POLICIES:
        get_policy(name).select(tiny, 2, 0)


def slice_outlines(slices, shape: tuple[int, ...]) -> list[np.ndarray]:
    """One rectangle (4 corners, data coordinates) framing each given slice, inset half a voxel."""
    _, h, w = shape[-3:]
    lo_r, lo_c, hi_r, hi_c = 0.5, 0.5, max(h - 1.5, 0.5), max(w - 1.5, 0.5)
    return [np.array([[s, lo_r, lo_c], [s, lo_r, hi_c], [s, hi_r, hi_c], [s, hi_r, lo_c]], dtype=float)
            for s in slices]


def display_status(ledger: SliceLedger, index: int) -> str:
    """The slice's provenance, or "to do" for a suggested slice nobody annotated."""
    state = ledger.provenance[index]
    return TO_DO if state == NOT_ANNOTATED and index in ledger.suggested else state


def describe_slice(ledger: SliceLedger, index: int) -> str:
    """Provenance in words; machine slices name their method, source and confidence."""
    text = display_status(ledger, index)
    machine = ledger.machine.get(index)
    if machine is not None:
        source = "" if machine.source == machine.method else f", {machine.source}"
        text += f" by {machine.method}{source}, confidence {machine.confidence:.2f}"
    return text


def marked_slices(ledger: SliceLedger) -> list[int]:
    """Slices framed on the canvas: the suggested ones and every slice with a state, so a machine
    slice is framed in blue whenever it is on screen."""
    return sorted(set(ledger.suggested) | {i for i, p in enumerate(ledger.provenance) if p != NOT_ANNOTATED})


def outline_colors(ledger: SliceLedger, slices) -> list[tuple[float, float, float, float]]:
    return [STATUS_COLORS[display_status(ledger, s)] for s in slices]


def overlay_text(ledger: SliceLedger | None, current: int) -> str:
    """The line shown over the canvas while scrolling."""
    if ledger is None:
        return ""
    status = describe_slice(ledger, current) if 0 <= current < ledger.depth else NOT_ANNOTATED
    mark = "suggested slice" if current in ledger.suggested else "slice"
    nxt = ledger.next_unannotated(current)
    tail = f" | next to do: {nxt}" if nxt is not None else (" | all suggested slices done" if ledger.suggested else "")
    return f"{mark} {current} (0..{ledger.depth - 1}): {status}\n{ledger.progress_text()}{tail}"


def slice_list_rows(ledger: SliceLedger) -> list[tuple[int, str, str]]:
    """(slice, display status, description) for the suggested slices and every slice with a state."""
    return [(i, display_status(ledger, i), describe_slice(ledger, i)) for i in marked_slices(ledger)]
