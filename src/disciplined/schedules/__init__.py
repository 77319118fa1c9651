"""Learning-rate (and momentum) policies as pure functions of the step, and the torch
adapter that writes a policy into an optimizer. The bottom layer: imports nothing else of
the package but `errors`."""
