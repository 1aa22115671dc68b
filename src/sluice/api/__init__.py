"""The native REST API (/api/v1): a thin adapter over the control services."""
