"""Storage: the metadata database and the artifact store."""
