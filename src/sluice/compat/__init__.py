"""Other people's protocols, each a thin adapter over the gateway or the services."""
