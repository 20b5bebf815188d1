"""Where every slice's labels came from, the plan they are measured against, and the time they took.

The ledger is the single source of truth for provenance. Every slice is exactly one of:

- ``not-annotated``: nobody vouches for it (whatever the labels layer shows there);
- ``human-painted``: the annotator painted it in the slice plane;
- ``human-marked-empty``: the annotator said it holds only background;
- ``machine-proposed``: propagation wrote it and nobody has reviewed it;
- ``machine-accepted``: propagation wrote it and the annotator accepted it (still machine-made).

Machine slices carry the method, a per-slice source and the method's confidence (below 1: machine
output is never shown at full confidence). Only a human stroke or an explicit accept moves a slice
out of a machine state; propagation can only write machine states. A :class:`SliceLedger` is
immutable: every change returns a new ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from slicebudget.errors import UserError
from slicebudget.volume import SparseAnnotation

NOT_ANNOTATED, HUMAN_PAINTED, HUMAN_EMPTY, MACHINE_PROPOSED, MACHINE_ACCEPTED = (
    "not-annotated", "human-painted", "human-marked-empty", "machine-proposed", "machine-accepted")
PROVENANCES = (NOT_ANNOTATED, HUMAN_PAINTED, HUMAN_EMPTY, MACHINE_PROPOSED, MACHINE_ACCEPTED)
HUMAN = frozenset({HUMAN_PAINTED, HUMAN_EMPTY})
MACHINE = frozenset({MACHINE_PROPOSED, MACHINE_ACCEPTED})
LEDGER_FORMAT, LEDGER_VERSION = "slicebudget-ledger", 2
MAX_MACHINE_CONFIDENCE = 0.99


@dataclass(frozen=True)
class MachineLabel:
    """How a machine slice was made: ``method`` (sli2vol, sdf, ...), ``source`` (what produced this
    slice within the method) and the method's ``confidence`` for it."""

    method: str
    source: str
    confidence: float

    def __post_init__(self):
        object.__setattr__(self, "confidence", float(min(max(self.confidence, 0.0), MAX_MACHINE_CONFIDENCE)))


@dataclass(frozen=True)
class SliceTime:
    """Active seconds the annotator spent on one slice, between ``started`` and ``finished`` (epoch s)."""

    started: float
    finished: float
    seconds: float


@dataclass(frozen=True)
class Plan:
    """One set of suggested slices and how it was chosen; ``made`` is when (epoch seconds)."""

    policy: str
    seed: int
    n_slices: int
    density: float
    suggested: tuple[int, ...]
    made: float

    def describe(self) -> str:
        return f"{self.policy} policy, seed {self.seed}"


@dataclass(frozen=True)
class SliceLedger:
    depth: int
    provenance: tuple[str, ...] = ()
    machine: Mapping[int, MachineLabel] = field(default_factory=dict)
    plan: Plan | None = None
    past_plans: tuple[Plan, ...] = ()
    timing: Mapping[int, SliceTime] = field(default_factory=dict)
    active_seconds: float = 0.0

    def __post_init__(self):
        if not self.provenance:
            object.__setattr__(self, "provenance", (NOT_ANNOTATED,) * self.depth)
        if len(self.provenance) != self.depth or not set(self.provenance) <= set(PROVENANCES):
            raise ValueError(f"provenance must name one of {PROVENANCES} for each of {self.depth} slices")
        machine_slices = {i for i, p in enumerate(self.provenance) if p in MACHINE}
        if set(self.machine) != machine_slices:
            raise ValueError("machine details must be given for exactly the machine slices")
        for plan in (self.plan, *self.past_plans):
            if plan is not None and any(not 0 <= s < self.depth for s in plan.suggested):
                raise UserError(f"suggested slices {list(plan.suggested)} fall outside a volume of {self.depth} slices")

    # ---- what each slice is -------------------------------------------------------------------
    def _mask(self, states) -> np.ndarray:
        return np.fromiter((p in states for p in self.provenance), dtype=bool, count=self.depth)

    @property
    def human(self) -> np.ndarray:
        """Slices a person annotated: painted, or marked empty."""
        return self._mask(HUMAN)

    @property
    def machine_made(self) -> np.ndarray:
        return self._mask(MACHINE)

    @property
    def accepted(self) -> np.ndarray:
        return self._mask({MACHINE_ACCEPTED})

    @property
    def pending_review(self) -> np.ndarray:
        return np.flatnonzero(self._mask({MACHINE_PROPOSED}))

    @property
    def suggested(self) -> tuple[int, ...]:
        return () if self.plan is None else self.plan.suggested

    def annotated(self, count_accepted: bool = False) -> np.ndarray:
        """Slices that export as annotated: the human ones, plus accepted machine ones if asked."""
        return self._mask(HUMAN | ({MACHINE_ACCEPTED} if count_accepted else set()))

    def progress(self) -> tuple[int, int]:
        """(suggested slices a person annotated, suggested slices)."""
        human = self.human
        return int(sum(human[s] for s in self.suggested)), len(self.suggested)

    def progress_text(self) -> str:
        k, n = self.progress()
        extra = int(self.human.sum()) - k
        text = f"{k} of {n} suggested slices annotated"
        return text + (f" (+{extra} other annotated slices)" if extra > 0 else "")

    # ---- navigation -------------------------------------------------------------------------
    def next_suggested(self, current: int, step: int = 1) -> int | None:
        """The next (``step`` = 1) or previous (-1) suggested slice from ``current``, wrapping round."""
        return _next(sorted(self.suggested), current, step)

    def next_unannotated(self, current: int) -> int | None:
        """The next suggested slice no person has annotated yet, after ``current``, wrapping round."""
        human = self.human
        return _next(sorted(s for s in self.suggested if not human[s]), current, 1)

    # ---- changes (each returns a new ledger) ----------------------------------------------------
    def _with(self, states: Mapping[int, str], details: Mapping[int, MachineLabel] | None = None) -> SliceLedger:
        provenance = list(self.provenance)
        machine = dict(self.machine)
        for s, state in states.items():
            provenance[int(s)] = state
            machine.pop(int(s), None)
            if state in MACHINE:
                machine[int(s)] = (details or {}).get(int(s)) or self.machine[int(s)]
        return replace(self, provenance=tuple(provenance), machine=machine)

    def after_stroke(self, has_foreground: Mapping[int, bool], claims: bool) -> SliceLedger:
        """A human stroke touched these slices (``has_foreground`` after it).

        A stroke in the slice plane (``claims``) makes a slice with foreground the annotator's, whatever
        was there before; a slice it leaves without foreground is no longer annotated (unless marked
        empty). A stroke across slices (a reformatted view, a 3D brush) only ever downgrades.
        """
        states = {}
        for s, fg in has_foreground.items():
            if fg and claims:
                states[s] = HUMAN_PAINTED
            elif contradicts(self.provenance[s], fg):
                states[s] = NOT_ANNOTATED
        return self._with(states)

    def marked_empty(self, index: int) -> SliceLedger:
        """The annotator marked ``index`` empty (its labels are already cleared)."""
        return self._with({self._check_index(index): HUMAN_EMPTY})

    def proposed(self, details: Mapping[int, MachineLabel], cleared: Iterable[int] = ()) -> SliceLedger:
        """Propagation wrote ``details``' slices and cleared its own stale ``cleared`` proposals."""
        states = {int(s): NOT_ANNOTATED for s in cleared if self.provenance[int(s)] == MACHINE_PROPOSED}
        for s in details:
            if self.provenance[s] not in (NOT_ANNOTATED, MACHINE_PROPOSED):
                raise ValueError(f"propagation must not write slice {s}, which is {self.provenance[s]}")
            states[s] = MACHINE_PROPOSED
        return self._with(states, details)

    def reviewed(self, slices: Iterable[int], accept: bool) -> SliceLedger:
        """Accept (keep, still machine-made) or reject (forget) proposed ``slices``."""
        target = MACHINE_ACCEPTED if accept else NOT_ANNOTATED
        return self._with({int(s): target for s in slices if self.provenance[int(s)] == MACHINE_PROPOSED})

    def accepted_from(self, details: Mapping[int, MachineLabel]) -> SliceLedger:
        """Machine labels copied in from a preview layer and accepted in one step."""
        if any(self.provenance[s] in HUMAN for s in details):
            raise ValueError("accepting machine labels must not overwrite human slices")
        return self._with({s: MACHINE_ACCEPTED for s in details}, details)

    def with_provenance_of(self, other: SliceLedger, slices: Iterable[int]) -> SliceLedger:
        """``other``'s provenance on ``slices`` (undo and redo restore it slice by slice)."""
        idx = [int(s) for s in slices]
        return self._with({s: other.provenance[s] for s in idx}, {s: other.machine[s] for s in idx if s in other.machine})

    def downgraded(self, slices: Iterable[int]) -> SliceLedger:
        """``slices`` become not annotated: their labels changed outside the plugin's own actions, or
        contradict their state. The only change that needs no human act, and it never upgrades."""
        return self._with({int(s): NOT_ANNOTATED for s in slices})

    def contradictions(self, has_foreground: np.ndarray) -> list[int]:
        """Slices whose state the labels contradict (painted or machine without foreground, empty with)."""
        return [s for s, p in enumerate(self.provenance) if contradicts(p, bool(has_foreground[s]))]

    def with_plan(self, plan: Plan) -> SliceLedger:
        """A new plan; the previous one goes to the history. Annotated slices keep their state."""
        past = self.past_plans + ((self.plan,) if self.plan is not None else ())
        return replace(self, plan=plan, past_plans=past)

    def with_time(self, index: int, start: float, end: float, seconds: float) -> SliceLedger:
        """Add ``seconds`` of active work on slice ``index`` during [start, end]."""
        old = self.timing.get(int(index))
        entry = SliceTime(start, end, seconds) if old is None else SliceTime(old.started, end, old.seconds + seconds)
        return replace(self, timing={**self.timing, int(index): entry})

    def with_active(self, seconds: float) -> SliceLedger:
        return replace(self, active_seconds=self.active_seconds + seconds)

    def _check_index(self, index: int) -> int:
        if not 0 <= int(index) < self.depth:
            raise UserError(f"slice {index} is outside the volume (0..{self.depth - 1})")
        return int(index)

    # ---- reading labels through the ledger ------------------------------------------------------
    def sparse_annotation(self, labels: np.ndarray, count_accepted: bool = False) -> SparseAnnotation:
        """Export or propagate from the human slices (plus accepted ones if asked); empty-marked
        slices are background whatever the array holds."""
        annotated = self.annotated(count_accepted)
        keep = annotated & ~self._mask({HUMAN_EMPTY})
        labels = np.asarray(labels)
        return SparseAnnotation(np.where(keep[:, None, None], labels, 0).astype(labels.dtype, copy=False), annotated)

    # ---- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "depth": self.depth,
            "slices": {state: [i for i, p in enumerate(self.provenance) if p == state]
                       for state in PROVENANCES if state != NOT_ANNOTATED},
            "machine": {str(s): asdict(m) for s, m in sorted(self.machine.items())},
            "plan": None if self.plan is None else asdict(self.plan),
            "past_plans": [asdict(p) for p in self.past_plans],
            "timing": {str(s): asdict(t) for s, t in sorted(self.timing.items())},
            "active_seconds": self.active_seconds,
        }

    @classmethod
    def from_dict(cls, raw: dict, source: str | None = None) -> SliceLedger:
        version = raw.get("version") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or raw.get("format") != LEDGER_FORMAT:
            found = "format 1 (napari-slicebudget 0.1)" if version == 1 else "an unknown format"
            raise UserError(f"slice records are in {found}, which this napari-slicebudget does not read: format 1 "
                            "could count propagated slices as painted by a person", source)
        if version != LEDGER_VERSION:
            raise UserError(f"slice records are version {version}; this napari-slicebudget reads version "
                            f"{LEDGER_VERSION} (update the plugin)", source)
        try:
            depth = int(raw["depth"])
            provenance = [NOT_ANNOTATED] * depth
            for state, slices in raw["slices"].items():
                if state not in PROVENANCES:
                    raise ValueError(f"unknown slice state {state!r}")
                for s in slices:
                    provenance[int(s)] = state
            plans = [None if p is None else _plan(p) for p in (raw["plan"], *raw["past_plans"])]
            return cls(
                depth=depth, provenance=tuple(provenance),
                machine={int(s): MachineLabel(str(m["method"]), str(m["source"]), float(m["confidence"]))
                         for s, m in raw["machine"].items()},
                plan=plans[0], past_plans=tuple(plans[1:]),
                timing={int(s): SliceTime(float(t["started"]), float(t["finished"]), float(t["seconds"]))
                        for s, t in raw["timing"].items()},
                active_seconds=float(raw["active_seconds"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise UserError(f"slice records are damaged ({exc})", source) from exc


def contradicts(state: str, has_foreground: bool) -> bool:
    """Painted and machine slices hold foreground; empty-marked ones do not."""
    if state == NOT_ANNOTATED:
        return False
    return has_foreground == (state == HUMAN_EMPTY)


def _plan(raw: dict) -> Plan:
    return Plan(str(raw["policy"]), int(raw["seed"]), int(raw["n_slices"]), float(raw["density"]),
                tuple(int(s) for s in raw["suggested"]), float(raw["made"]))


def _next(ordered: list[int], current: int, step: int) -> int | None:
    if not ordered:
        return None
    if step > 0:
        return next((s for s in ordered if s > current), ordered[0])
    return next((s for s in reversed(ordered) if s < current), ordered[-1])


def foreground_per_slice(labels: np.ndarray, slices=None) -> np.ndarray:
    """Whether each slice (or each of ``slices``) holds any non-zero label."""
    labels = np.asarray(labels)
    if slices is None:
        return labels.reshape(labels.shape[0], -1).any(axis=1)
    idx = np.asarray(list(slices), dtype=int)
    return labels[idx].reshape(idx.size, -1).any(axis=1)
