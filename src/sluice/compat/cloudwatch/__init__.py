"""CloudWatch's API (metrics now; alarms next) on the server's port."""
