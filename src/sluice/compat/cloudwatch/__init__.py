"""CloudWatch's API (metrics and alarms) on the server's port."""
