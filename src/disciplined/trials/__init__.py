"""Trials: hyper-parameters (`HParams`), one trial's spec and result, the stores that keep
them, and the executors that run them (in process, in worker processes, on Ray)."""
