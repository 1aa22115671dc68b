"""Control-plane services: plain Python, no HTTP, no ORM objects."""
