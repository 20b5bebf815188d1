"""Budget planning: a fitted budget surface IoU(n volumes, k slices each) with self-checked intervals.

Between ``study`` (finished runs) and ``report``; it knows no GUI. The modules follow the data:
observations (runs -> IoU per cell, repeat and test case) -> forms (candidate surfaces) -> fit
(weighted least squares) -> bootstrap (repeats and cases resampled together; new-campaign spread) ->
formchoice (the form rule, for each replicate too) -> surface -> selfcheck (leave-one-cell-out, largest
budgets, noise floor) -> costs (annotation time) -> allocate (integer plans at a budget) -> plan (what the CLI, report and plugin show).

Import from the submodules (``slicebudget.planning.plan.plan_study``); this package imports nothing,
so ``budget-study --help`` stays fast.
"""
