"""Where variant instances run: local worker processes, or (later) a Ray cluster."""
