"""The code behind every ``budget-study bench ...`` command, kept out of the library packages.

Benchmarks sit at the top of the flow (only the CLI is above them): they may use any library
package, and score with :mod:`slicebudget.metrics` like the study does. Nothing in the library
imports from here.
"""
