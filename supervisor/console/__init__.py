"""The operator console: a single-page app served by the API at ``/console`` (docs/console.md).

Static files only (``static/``): the page, its script and style, and the vendored front-end
libraries (``static/vendor/``, rebuilt by ``make console-assets`` from ``package-lock.json``). The
page reads everything through ``/api/v1`` with the token the user typed (sent in ``Authorization``),
and its live updates from ``/api/v1/events``. :func:`csp` is the Content-Security-Policy of every
answer under ``/console``: scripts, styles and images from this origin only (plus the tile server's
origin when ``api.console.tile_url`` is set), no inline script or style, requests to this origin only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from supervisor.config import ConsoleConfig

PATH = "/console"
STATIC = Path(__file__).with_name("static")


def csp(cfg: ConsoleConfig) -> str:
    """The console's Content-Security-Policy."""
    tiles = f" {cfg.tile_origin}" if cfg.tile_origin else ""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src 'self' data:{tiles}; connect-src 'self'{tiles}; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def install(app: FastAPI, cfg: ConsoleConfig) -> None:
    """Serve the console at ``/console/`` (nothing when ``api.console.enabled`` is false)."""
    if not cfg.enabled:
        return

    @app.get(PATH, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{PATH}/", status_code=308)

    @app.get(f"{PATH}/config.json", include_in_schema=False)
    def console_config() -> dict[str, Any]:
        """What the page needs before login: the base map (no secret here)."""
        return {"tile_url": cfg.tile_url, "tile_attribution": cfg.tile_attribution, "api": "/api/v1"}

    app.mount(PATH, StaticFiles(directory=STATIC, html=True), name="console")
