"""Model execution in worker processes, separate from the gateway."""
