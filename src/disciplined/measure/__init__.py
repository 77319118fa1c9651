"""Measurements over curves: the LR range test and its record, the suggestion rules that
read a curve, and the under/overfitting diagnosis of a training run."""
