"""Short findings computed from the data, each set beside what the slice-selection paper found.

Nothing here is a fixed conclusion: each verdict comes from the numbers, and the text says whether
it agrees with the paper or not. 2D and 3D are judged separately, as the paper's Fig. 1a and 1b are.

Every topic follows one rule (:mod:`slicebudget.report.paired`): the paired difference over repeats
and test cases, with a 95% bootstrap interval. A difference whose interval excludes 0 is a finding,
set beside the paper; anything else reads "no detectable difference; this study could have detected
a difference of X IoU", and neither agrees nor disagrees with the paper (``agrees_with_paper`` None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import pandas as pd

from slicebudget.report.paired import by_repeat_case, difference, paired_difference, pooled

# The paper's conclusions, paraphrased, used only to say whether the data agree.
PAPER = {
    "spread": "The paper found it almost always better to annotate more volumes with fewer slices each "
              "at an equal budget (in 3D with an exception at very low density).",
    "policy": "The paper found no slice-selection policy consistently better than the others.",
    "interpolation": "The paper found that mask interpolation rarely improved the trained model "
                     "(a gain only for some 3D settings at low density).",
}


@dataclass(frozen=True)
class Finding:
    topic: str  # "spread" | "policy" | "interpolation"
    dims: int
    verdict: str  # "spread" | "concentrate" | "matters" | "helps" | "hurts" | "no-difference" | "insufficient"
    text: str
    paper: str
    agrees_with_paper: bool | None

    def as_dict(self) -> dict:
        return asdict(self)


def _sparse_off(cases: pd.DataFrame, dims: int) -> pd.DataFrame:
    return cases.loc[(cases["dims"] == dims) & (cases["interpolation"] == "off") & ~cases["is_dense_baseline"]]


def _null(result) -> str:
    return f" {result.null_text()[0].upper()}{result.null_text()[1:]}, so these data neither confirm nor contradict the paper."


def spread_finding(cases: pd.DataFrame, rho_s: pd.DataFrame, dims: int) -> Finding:
    """At equal budget, does the configuration with more volumes (larger s, smaller rho) score higher?"""
    sparse = rho_s.loc[(rho_s["dims"] == dims) & ~rho_s["is_dense_baseline"]]
    values = by_repeat_case(_sparse_off(cases, dims), ["model", "budget_level", "density", "volume_fraction"])
    wins = total = 0
    differences = []
    for (model, level), group in sparse.groupby(["model", "budget_level"]):
        for (_, a), (_, b) in combinations(group.iterrows(), 2):
            if round(a["n_volumes"]) == round(b["n_volumes"]):
                continue
            more, fewer = (a, b) if a["n_volumes"] > b["n_volumes"] else (b, a)
            total += 1
            wins += int(more["mean_iou"] > fewer["mean_iou"])
            differences.append(difference(values.loc[(model, level, more["density"], more["volume_fraction"])],
                                          values.loc[(model, level, fewer["density"], fewer["volume_fraction"])]))
    result = paired_difference(pooled(differences)) if differences else None
    if result is None:
        return Finding("spread", dims, "insufficient",
                       f"{dims}D: no budget level has two configurations with different volume counts, "
                       "so the data cannot say whether spreading the budget helps.", PAPER["spread"], None)
    evidence = (f"{dims}D: at equal budget, the configuration with more volumes (larger s, smaller rho) scored "
                f"higher in {wins} of {total} comparisons; more minus fewer volumes, paired and pooled over "
                f"them: {result.describe()}.")
    if not result.detected:
        return Finding("spread", dims, "no-difference", evidence + _null(result), PAPER["spread"], None)
    if result.mean > 0:
        return Finding("spread", dims, "spread", evidence + " Spreading the budget over more volumes "
                       "helped here, as in the paper.", PAPER["spread"], True)
    return Finding("spread", dims, "concentrate", evidence + " Concentrating the budget on fewer volumes "
                   "at higher density did better here: the opposite of the paper's finding.", PAPER["spread"], False)


def policy_finding(cases: pd.DataFrame, dims: int) -> Finding:
    """Does the policy matter: each policy against the mean over policies, paired (Fig. 5)."""
    per_policy = by_repeat_case(_sparse_off(cases, dims), ["model", "density", "volume_fraction", "policy"])
    frame = per_policy.rename("iou").reset_index()
    groups = ["model", "density", "volume_fraction", "repeat", "case"]
    frame = frame.loc[frame.groupby(groups)["policy"].transform("nunique") >= 2]
    if frame.empty:
        return Finding("policy", dims, "insufficient",
                       f"{dims}D: no (model, rho, s, repeat) finished with two or more policies, so policies "
                       "cannot be compared.", PAPER["policy"], None)
    frame = frame.assign(delta=frame["iou"] - frame.groupby(groups)["iou"].transform("mean"))
    results = {policy: paired_difference(group.groupby(["repeat", "case"])["delta"].mean())
               for policy, group in frame.groupby("policy", sort=True)}
    evidence = (f"{dims}D: each policy's IoU minus the mean over policies, paired by (model, rho, s, repeat, case): "
                + "; ".join(f"{policy} {result.describe()}" for policy, result in results.items()) + ".")
    standouts = [(policy, r.mean) for policy, r in results.items() if r.detected]
    if standouts:
        named = ", ".join(f"{policy} ({delta:+.3f})" for policy, delta in standouts)
        return Finding("policy", dims, "matters", evidence + f" {named} differs from the policy mean beyond its "
                       "95% interval: the policy matters here, unlike in the paper.", PAPER["policy"], False)
    worst = max(results.values(), key=lambda r: -1.0 if r.mde is None else r.mde)
    return Finding("policy", dims, "no-difference", evidence + _null(worst), PAPER["policy"], None)


def interpolation_findings(cases: pd.DataFrame, overall: pd.DataFrame, dims: int) -> list[Finding]:
    """Does interpolating masks before training change the IoU (paired: same annotated slices, repeat, case)?"""
    rows = overall.loc[overall["dims"] == dims]
    keys = ["model", "density", "volume_fraction", "policy"]
    mine = cases.loc[cases["dims"] == dims]
    off = by_repeat_case(mine.loc[mine["interpolation"] == "off"], keys)
    findings = []
    for row in rows.itertuples(index=False):
        on = by_repeat_case(mine.loc[mine["interpolation"] == row.method], keys)
        diff = difference(on, off).rename("delta").reset_index()
        result = paired_difference(diff.groupby(["repeat", "case"])["delta"].mean())
        per_rho = {rho: paired_difference(group.groupby(["repeat", "case"])["delta"].mean())
                   for rho, group in diff.groupby("density", sort=True)}
        helped = [f"{rho:g}" for rho, r in per_rho.items() if r.detected and r.mean > 0]
        hurt = [f"{rho:g}" for rho, r in per_rho.items() if r.detected and r.mean < 0]
        text = (f"{dims}D, {row.method}: IoU with interpolation minus without, on the same annotated slices: "
                f"{result.describe()}; mean IoU {row.iou_interp:.3f} with, {row.iou_off:.3f} without.")
        if helped:
            text += f" Clear gain at rho = {', '.join(helped)}."
        if hurt:
            text += f" Clear loss at rho = {', '.join(hurt)}."
        if result.detected and result.mean > 0:
            verdict, agrees = "helps", False
            text += " Interpolation helped overall, unlike the paper's general finding."
        elif result.detected:
            verdict, agrees = "hurts", True
            text += " Interpolation hurt overall; the paper too found it rarely helps."
        else:
            verdict, agrees = "no-difference", None
            text += _null(result)
        findings.append(Finding("interpolation", dims, verdict, text, PAPER["interpolation"], agrees))
    return findings


def all_findings(cases: pd.DataFrame, rho_s: pd.DataFrame, interp_overall: pd.DataFrame) -> list[Finding]:
    """Every finding for every dimensionality present in the data (2D first)."""
    dims_present = sorted(set(rho_s["dims"]) if not rho_s.empty else set())
    findings = []
    for dims in dims_present:
        findings.append(spread_finding(cases, rho_s, dims))
        findings.append(policy_finding(cases, dims))
        findings.extend(interpolation_findings(cases, interp_overall, dims))
    return findings
