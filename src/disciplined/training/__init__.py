"""Training: batching (tensors, loaders, user step losses), devices and mixed precision,
`fit` and its `History`, `evaluate`. Imports only `schedules` and the foundations."""
