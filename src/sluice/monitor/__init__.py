"""Model monitoring: baselines, drift and quality checks over captured data."""
