"""Application Auto Scaling's API on the server's port."""
