"""The dashboard: a web UI served by the sluice process itself, from files in this package
(its third-party scripts vendored under static/vendor, nothing from a CDN).

The page shell (HTML, scripts, styles) holds no data and answers anyone; every figure it
shows comes from /api/v1 with the bearer token the user gives it, so the dashboard asks
for exactly the credentials and role the API does.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
HEADERS = {
    # Scripts and data from this server only; no frames; the token stays in the tab.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _page(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=HEADERS)


async def _home(_: Request) -> Response:
    return RedirectResponse("/ui/")


def routes() -> list[BaseRoute]:
    return [
        Route("/", _home, methods=["GET"]),
        Route("/ui/", _page, methods=["GET"]),
        Mount("/ui/static", app=StaticFiles(directory=STATIC), name="dashboard-static"),
    ]


def is_shell(method: str, path: str) -> bool:
    """The page shell and its files: open to anyone, as they hold no data."""
    return method in ("GET", "HEAD") and (
        path in ("/", "/ui", "/ui/") or path.startswith("/ui/static/")
    )
