"""Comparison reports: shadow tests, A/B tests and replays, computed from data capture."""
