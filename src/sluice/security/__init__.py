"""Who may call the server and what a request may make it touch."""
