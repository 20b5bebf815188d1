"""Code behind `budget-study bench ...` commands, kept out of the library packages."""
