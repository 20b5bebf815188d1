"""Adaptive study designs: choose the next (cell, repeat) runs by what they tell the plan.

Between ``planning`` (the budget surface) and ``report``; it knows no GUI. ``propose`` holds the
loop's step; it uses ``candidates`` (the runs, the space-filling start, costs), ``surfaces`` (the
planner's plans and what the surface could be), ``stop`` (the stop rule) and ``value`` (the value
of a run for the plans at the target budgets, and the batch). ``slicebudget.bench.design``
replays designs offline against a finished full study (runs used and regret).

Import from the submodules; this package imports nothing, so ``budget-study --help`` stays fast.
"""
