"""Studies: each of Smith's short experiments (range tests, weight decay, momentum,
dropout, batch size) as trial specs run through a `StudyContext`, read by a pure rule that
returns a `Decision`."""
