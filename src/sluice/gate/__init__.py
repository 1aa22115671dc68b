"""The CI gate: a candidate model against a baseline on a fixed validation set."""
