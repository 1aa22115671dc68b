"""Model runtimes: plug-ins that load and run one kind of model."""
