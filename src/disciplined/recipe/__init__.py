"""The recipe: the plan of steps with their budgets, the loop that runs it (`tune`), the
one-call 1cycle fit, and the search baselines it is compared against."""
