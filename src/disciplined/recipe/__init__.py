"""The recipe: the plan of steps with their budgets, the loop that runs it (`tune`) and the
one-call 1cycle fit. The searches it is compared against are in `disciplined.search`."""
