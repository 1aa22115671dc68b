"""sluice: put machine-learning models into production safely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from sluice.client import Client


def __getattr__(name: str) -> Any:
    # Lazy so that `import sluice` (and the CLI's --help) stays cheap.
    if name == "Client":
        from sluice.client import Client

        return Client
    raise AttributeError(name)
