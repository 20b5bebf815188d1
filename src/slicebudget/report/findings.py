"""Short findings computed from the data, each set beside what the slice-selection paper found.

Nothing here is a fixed conclusion: each verdict comes from the numbers, and the text says whether
it agrees with the paper or not. 2D and 3D are judged separately, as the paper's Fig. 1a and 1b are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import pandas as pd

from slicebudget.report.stats import Interval, intervals_overlap

# The paper's conclusions, paraphrased, used only to say whether the data agree.
PAPER = {
    "spread": "The paper found it almost always better to annotate more volumes with fewer slices each "
              "at an equal budget (in 3D with an exception at very low density).",
    "policy": "The paper found no slice-selection policy consistently better than the others.",
    "interpolation": "The paper found that mask interpolation rarely improved the trained model "
                     "(a gain only for some 3D settings at low density).",
}
# A verdict needs a clear majority of comparisons; anything between is called mixed.
MAJORITY = 2.0 / 3.0


@dataclass(frozen=True)
class Finding:
    topic: str  # "spread" | "policy" | "interpolation"
    dims: int
    verdict: str  # e.g. "spread", "concentrate", "mixed", "matters", "no-difference", "helps", ...
    text: str
    paper: str
    agrees_with_paper: bool | None

    def as_dict(self) -> dict:
        return asdict(self)


def _interval(row) -> Interval:
    low = None if pd.isna(row["ci_low"]) else float(row["ci_low"])
    high = None if pd.isna(row["ci_high"]) else float(row["ci_high"])
    return Interval(mean=float(row["mean_iou"]), low=low, high=high, n=int(row["n_repeats"]))


def spread_finding(rho_s: pd.DataFrame, dims: int) -> Finding:
    """At equal budget, does the configuration with more volumes (larger s, smaller rho) score higher?"""
    sparse = rho_s.loc[(rho_s["dims"] == dims) & ~rho_s["is_dense_baseline"]]
    wins = separated = total = 0
    differences = []
    for _, group in sparse.groupby(["model", "budget_level"]):
        for (_, a), (_, b) in combinations(group.iterrows(), 2):
            if round(a["n_volumes"]) == round(b["n_volumes"]):
                continue
            more, fewer = (a, b) if a["n_volumes"] > b["n_volumes"] else (b, a)
            total += 1
            wins += int(more["mean_iou"] > fewer["mean_iou"])
            differences.append(float(more["mean_iou"] - fewer["mean_iou"]))
            separated += int(intervals_overlap(_interval(more), _interval(fewer)) is False)
    if total == 0:
        return Finding("spread", dims, "insufficient",
                       f"{dims}D: no budget level has two configurations with different volume counts, "
                       "so the data cannot say whether spreading the budget helps.", PAPER["spread"], None)
    share = wins / total
    mean_difference = sum(differences) / total
    evidence = (
        f"{dims}D: at equal budget, the configuration with more volumes (larger s, smaller rho) scored "
        f"higher in {wins} of {total} comparisons (mean difference {mean_difference:+.3f} IoU; "
        f"{separated} of {total} with non-overlapping 95% intervals over repeats)."
    )
    if separated == 0:
        # A direction made only of differences inside repeat noise is no finding: say so rather
        # than call it agreement or disagreement with the paper.
        lean = "more" if share >= MAJORITY else "fewer" if share <= 1.0 - MAJORITY else "neither"
        return Finding("spread", dims, "inconclusive", evidence + " None of the differences stands clear of "
                       f"repeat noise (the means lean towards {lean} volumes), so these data neither confirm "
                       "nor contradict the paper; more repeats or a longer training budget would tell.",
                       PAPER["spread"], None)
    if share >= MAJORITY:
        return Finding("spread", dims, "spread", evidence + " Spreading the budget over more volumes "
                       "helped here, as in the paper.", PAPER["spread"], True)
    if share <= 1.0 - MAJORITY:
        return Finding("spread", dims, "concentrate", evidence + " Concentrating the budget on fewer volumes "
                       "at higher density did better here: the opposite of the paper's finding.",
                       PAPER["spread"], False)
    return Finding("spread", dims, "mixed", evidence + " The data show no consistent direction, whereas "
                   "the paper found spreading almost always better.", PAPER["spread"], False)


def policy_finding(summary: pd.DataFrame, dims: int) -> Finding:
    """Does the policy matter: Fig. 5 deltas against the repeat noise of the same runs."""
    rows = summary.loc[summary["dims"] == dims]
    if rows.empty:
        return Finding("policy", dims, "insufficient",
                       f"{dims}D: no (model, rho, s, repeat) finished with two or more policies, so policies "
                       "cannot be compared.", PAPER["policy"], None)
    parts = []
    standouts = []
    for row in rows.itertuples(index=False):
        interval = Interval(row.mean_delta, None if pd.isna(row.ci_low) else row.ci_low,
                            None if pd.isna(row.ci_high) else row.ci_high, int(row.n_groups))
        parts.append(f"{row.policy} {interval.describe(digits=4)}")
        if interval.excludes(0.0):
            standouts.append((row.policy, row.mean_delta))
    spread = float(rows["mean_delta"].max() - rows["mean_delta"].min())
    noise = rows["repeat_noise_sd"].iloc[0]
    noise_text = "unknown (no configuration was repeated)" if pd.isna(noise) else f"{noise:.4f}"
    evidence = (
        f"{dims}D: IoU minus the mean over policies: {'; '.join(parts)}. Spread between policies "
        f"{spread:.4f} IoU against repeat noise (SD over repeats) {noise_text}."
    )
    if all(int(n) < 2 for n in rows["n_groups"]):
        return Finding("policy", dims, "insufficient", evidence + " With one comparison per policy the data "
                       "cannot judge whether the policy matters.", PAPER["policy"], None)
    beats_noise = pd.isna(noise) or spread > float(noise)
    if standouts and beats_noise:
        named = ", ".join(f"{policy} ({delta:+.3f})" for policy, delta in standouts)
        return Finding("policy", dims, "matters", evidence + f" {named} differs from the policy mean beyond "
                       "its 95% interval and the spread exceeds repeat noise: the policy matters here, "
                       "unlike in the paper.", PAPER["policy"], False)
    return Finding("policy", dims, "no-difference", evidence + " No policy stands out from repeat noise, "
                   "as in the paper.", PAPER["policy"], True)


def interpolation_findings(overall: pd.DataFrame, by_density: pd.DataFrame, dims: int) -> list[Finding]:
    """Does interpolating masks before training change the IoU (paired, same annotated slices)?"""
    rows = overall.loc[overall["dims"] == dims]
    findings = []
    for row in rows.itertuples(index=False):
        interval = Interval(row.mean_delta, None if pd.isna(row.ci_low) else row.ci_low,
                            None if pd.isna(row.ci_high) else row.ci_high, int(row.n_pairs))
        per_rho = by_density.loc[(by_density["dims"] == dims) & (by_density["method"] == row.method)]
        helped = [f"{r.density:g}" for r in per_rho.itertuples(index=False)
                  if not pd.isna(r.ci_low) and r.ci_low > 0]
        hurt = [f"{r.density:g}" for r in per_rho.itertuples(index=False)
                if not pd.isna(r.ci_high) and r.ci_high < 0]
        text = (f"{dims}D, {row.method}: IoU with interpolation minus without, on the same annotated slices: "
                f"{interval.describe(digits=4)}; mean IoU {row.iou_interp:.3f} with, {row.iou_off:.3f} without.")
        if helped:
            text += f" Clear gain at rho = {', '.join(helped)}."
        if hurt:
            text += f" Clear loss at rho = {', '.join(hurt)}."
        if not interval.has_interval:
            verdict, agrees = "insufficient", None
            text += " A single pair cannot show whether interpolation helps."
        elif interval.low > 0:
            verdict, agrees = "helps", False
            text += " Interpolation helped overall, unlike the paper's general finding."
        elif interval.high < 0:
            verdict, agrees = "hurts", True
            text += " Interpolation hurt overall; the paper too found it rarely helps."
        else:
            verdict, agrees = "no-clear-effect", True
            text += " No clear effect overall, in line with the paper."
        findings.append(Finding("interpolation", dims, verdict, text, PAPER["interpolation"], agrees))
    return findings


def all_findings(rho_s: pd.DataFrame, policies: pd.DataFrame, interp_overall: pd.DataFrame,
                 interp_by_density: pd.DataFrame) -> list[Finding]:
    """Every finding for every dimensionality present in the data (2D first)."""
    dims_present = sorted(set(rho_s["dims"]) if not rho_s.empty else set())
    findings = []
    for dims in dims_present:
        findings.append(spread_finding(rho_s, dims))
        findings.append(policy_finding(policies, dims))
        findings.extend(interpolation_findings(interp_overall, interp_by_density, dims))
    return findings
