"""What the annotator has done to each slice, and the plan it is measured against.

A :class:`SliceLedger` is immutable: every change returns a new ledger, so widgets can share one
through a holder and compare before/after. Provenance matters: a slice holding foreground that came
from propagation is not a human annotation until the annotator accepts it or paints on it, and a
slice the annotator marked empty is annotated (as background) though it holds no foreground.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import numpy as np

from slicebudget.errors import UserError
from slicebudget.volume import SparseAnnotation

SUGGESTED, ANNOTATED, EMPTY, PROPAGATED, ACCEPTED, NONE = (
    "suggested", "annotated", "empty", "propagated", "accepted", "none")
STATUSES = (SUGGESTED, ANNOTATED, EMPTY, PROPAGATED, ACCEPTED, NONE)
LEDGER_VERSION = 1


def _flags(depth: int, values=None) -> np.ndarray:
    out = np.zeros(depth, dtype=bool)
    if values is not None:
        out[np.asarray(list(values), dtype=int)] = True
    return out


def foreground_per_slice(labels: np.ndarray, slices=None) -> np.ndarray:
    """Whether each slice (or each of ``slices``) holds any non-zero label."""
    labels = np.asarray(labels)
    if slices is None:
        return labels.reshape(labels.shape[0], -1).any(axis=1)
    idx = np.asarray(list(slices), dtype=int)
    return labels[idx].reshape(idx.size, -1).any(axis=1)


@dataclass(frozen=True)
class LogEntry:
    """A slice became annotated (``annotated`` or ``empty``) at ``time`` (seconds since the epoch)."""

    time: float
    slice: int
    status: str


@dataclass(frozen=True, eq=False)
class SliceLedger:
    depth: int
    suggested: tuple[int, ...] = ()
    has_foreground: np.ndarray = field(default=None, repr=False)
    marked_empty: np.ndarray = field(default=None, repr=False)
    propagated: np.ndarray = field(default=None, repr=False)  # awaiting review
    accepted: np.ndarray = field(default=None, repr=False)
    plan: dict = field(default_factory=dict)  # policy, seed, n_slices, density
    log: tuple[LogEntry, ...] = ()

    def __post_init__(self):
        for name in ("has_foreground", "marked_empty", "propagated", "accepted"):
            value = getattr(self, name)
            object.__setattr__(self, name, _flags(self.depth) if value is None else np.asarray(value, dtype=bool).copy())
            if getattr(self, name).shape != (self.depth,):
                raise ValueError(f"{name} must have one entry per slice ({self.depth})")
        if any(not 0 <= s < self.depth for s in self.suggested):
            raise UserError(f"suggested slices {list(self.suggested)} fall outside a volume of {self.depth} slices")

    # ---- what each slice is -------------------------------------------------------------------
    @property
    def machine_made(self) -> np.ndarray:
        """Slices whose foreground came from propagation (pending or accepted)."""
        return (self.propagated | self.accepted) & self.has_foreground

    @property
    def human_annotated(self) -> np.ndarray:
        """Slices a person annotated: painted foreground, or marked as empty."""
        painted = self.has_foreground & ~self.propagated & ~self.accepted
        return painted | (self.marked_empty & ~self.has_foreground)

    def statuses(self) -> list[str]:
        painted = self.has_foreground & ~self.propagated & ~self.accepted
        empty = self.marked_empty & ~self.has_foreground
        pending = self.propagated & self.has_foreground
        accepted = self.accepted & self.has_foreground
        suggested = _flags(self.depth, self.suggested)
        out = []
        for i in range(self.depth):
            if painted[i]:
                out.append(ANNOTATED)
            elif empty[i]:
                out.append(EMPTY)
            elif pending[i]:
                out.append(PROPAGATED)
            elif accepted[i]:
                out.append(ACCEPTED)
            elif suggested[i]:
                out.append(SUGGESTED)
            else:
                out.append(NONE)
        return out

    def status(self, index: int) -> str:
        return self.statuses()[int(index)]

    def progress(self) -> tuple[int, int]:
        """(suggested slices annotated, suggested slices)."""
        done = self.human_annotated
        return int(sum(done[s] for s in self.suggested)), len(self.suggested)

    def progress_text(self) -> str:
        k, n = self.progress()
        extra = int(self.human_annotated.sum()) - k
        text = f"{k} of {n} annotated"
        return text + (f" (+{extra} other slices)" if extra > 0 else "")

    # ---- navigation -------------------------------------------------------------------------
    def next_suggested(self, current: int, step: int = 1) -> int | None:
        """The next (``step`` = 1) or previous (-1) suggested slice from ``current``, wrapping round."""
        if not self.suggested:
            return None
        ordered = sorted(self.suggested)
        if step > 0:
            later = [s for s in ordered if s > current]
            return later[0] if later else ordered[0]
        earlier = [s for s in ordered if s < current]
        return earlier[-1] if earlier else ordered[-1]

    def next_unannotated(self, current: int) -> int | None:
        """The next suggested slice not yet annotated, after ``current``, wrapping round."""
        done = self.human_annotated
        todo = sorted(s for s in self.suggested if not done[s])
        if not todo:
            return None
        later = [s for s in todo if s > current]
        return later[0] if later else todo[0]

    # ---- changes (each returns a new ledger) ----------------------------------------------------
    def with_plan(self, suggested, **plan) -> SliceLedger:
        return replace(self, suggested=tuple(sorted(int(s) for s in suggested)), plan=dict(plan))

    def _logged(self, before: np.ndarray, after: SliceLedger, now: float | None) -> SliceLedger:
        newly = np.flatnonzero(after.human_annotated & ~before)
        if newly.size == 0:
            return after
        now = time.time() if now is None else float(now)
        statuses = after.statuses()
        entries = tuple(LogEntry(now, int(i), statuses[i]) for i in newly)
        return replace(after, log=self.log + entries)

    def with_painted(self, labels: np.ndarray, slices, now: float | None = None) -> SliceLedger:
        """A person painted on ``slices``: they become human-made, whatever propagation put there."""
        idx = np.unique(np.asarray(list(slices), dtype=int))
        idx = idx[(idx >= 0) & (idx < self.depth)]
        if idx.size == 0:
            return self
        fg = self.has_foreground.copy()
        fg[idx] = foreground_per_slice(labels, idx)
        propagated, accepted, empty = self.propagated.copy(), self.accepted.copy(), self.marked_empty.copy()
        propagated[idx] = False
        accepted[idx] = False
        empty[idx[fg[idx]]] = False  # paint on a slice marked empty overrides the mark
        after = replace(self, has_foreground=fg, propagated=propagated, accepted=accepted, marked_empty=empty)
        return self._logged(self.human_annotated, after, now)

    def with_labels(self, labels: np.ndarray, now: float | None = None) -> SliceLedger:
        """Refresh which slices hold foreground (after undo, redo or a programmatic write)."""
        if np.asarray(labels).shape[0] != self.depth:
            raise UserError(f"labels have {np.asarray(labels).shape[0]} slices, the plan {self.depth}")
        after = replace(self, has_foreground=foreground_per_slice(labels))
        return self._logged(self.human_annotated, after, now)

    def with_empty(self, index: int, now: float | None = None) -> SliceLedger:
        """Mark slice ``index`` as annotated and holding only background."""
        index = int(index)
        if not 0 <= index < self.depth:
            raise UserError(f"slice {index} is outside the volume (0..{self.depth - 1})")
        if self.has_foreground[index] and not (self.propagated[index] or self.accepted[index]):
            raise UserError(f"slice {index} holds painted labels; erase them before marking it empty")
        if self.has_foreground[index]:
            raise UserError(f"slice {index} holds propagated labels; reject them before marking it empty")
        empty = self.marked_empty.copy()
        empty[index] = True
        return self._logged(self.human_annotated, replace(self, marked_empty=empty), now)

    def with_propagated(self, slices) -> SliceLedger:
        """Propagation wrote ``slices`` (never human slices): they await review."""
        idx = np.asarray(list(slices), dtype=int)
        if idx.size and self.human_annotated[idx].any():
            raise ValueError("propagation must not claim human-annotated slices")
        propagated, accepted = self.propagated.copy(), self.accepted.copy()
        propagated[idx] = True
        accepted[idx] = False
        return replace(self, propagated=propagated, accepted=accepted)

    def with_reviewed(self, slices, accept: bool) -> SliceLedger:
        """Accept (keep, count as reviewed) or reject (forget) propagated ``slices``."""
        idx = np.asarray([s for s in slices if self.propagated[int(s)]], dtype=int)
        propagated, accepted = self.propagated.copy(), self.accepted.copy()
        propagated[idx] = False
        accepted[idx] = accept
        return replace(self, propagated=propagated, accepted=accepted)

    @property
    def pending_review(self) -> np.ndarray:
        return np.flatnonzero(self.propagated & self.has_foreground)

    def sparse_annotation(self, labels: np.ndarray, count_accepted: bool = False) -> SparseAnnotation:
        """The annotation to export or propagate from: human slices (plus accepted ones if asked)."""
        annotated = self.human_annotated.copy()
        if count_accepted:
            annotated |= self.accepted & self.has_foreground
        labels = np.asarray(labels)
        kept = np.where(annotated[:, None, None], labels, 0).astype(labels.dtype, copy=False)
        return SparseAnnotation(kept, annotated)

    # ---- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "version": LEDGER_VERSION,
            "depth": self.depth,
            "plan": {**self.plan, "suggested": list(self.suggested)},
            "statuses": self.statuses(),
            "progress": dict(zip(("annotated", "suggested"), self.progress())),
            "flags": {name: np.flatnonzero(getattr(self, name)).tolist()
                      for name in ("has_foreground", "marked_empty", "propagated", "accepted")},
            "log": [{"time": e.time, "slice": e.slice, "status": e.status} for e in self.log],
        }

    @classmethod
    def from_dict(cls, raw: dict, source: str | None = None) -> SliceLedger:
        try:
            depth = int(raw["depth"])
            plan = dict(raw.get("plan", {}))
            suggested = plan.pop("suggested", [])
            flags = raw.get("flags", {})
            return cls(
                depth=depth,
                suggested=tuple(int(s) for s in suggested),
                plan=plan,
                log=tuple(LogEntry(float(e["time"]), int(e["slice"]), str(e["status"])) for e in raw.get("log", [])),
                **{name: _flags(depth, flags.get(name, [])) for name in
                   ("has_foreground", "marked_empty", "propagated", "accepted")},
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"slice-status file is damaged ({exc})", source) from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"
