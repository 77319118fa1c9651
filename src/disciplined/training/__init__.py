"""Training, one module per concern: `history` (`History`, `EvalRecord` and their JSON),
`devices` (device names, mixed precision), `batching` (tensors, loaders, user step losses,
batches per epoch), `evaluate`, and `fit` (the loop, whose module re-exports all of these
names). Imports only `schedules` and the foundations."""
