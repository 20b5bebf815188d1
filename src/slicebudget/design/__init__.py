"""Adaptive study designs: choose the next (cell, repeat) runs by what they tell the plan.

Between ``planning`` (the budget surface) and ``report``; it knows no GUI. ``propose`` holds the
loop's step: candidates, the space-filling start, the value of a run for the plan at the target
budgets, the batch, the stop rule. ``slicebudget.bench.design`` replays designs offline against a
finished full study (runs used and regret).

Import from the submodules; this package imports nothing, so ``budget-study --help`` stays fast.
"""
