"""The data plane: one asyncio process that routes inference requests; models never run here."""
