"""The HTTP API of the supervisor (FastAPI): read-only views for viewers, a few writes for operators.

``create_app(sup, cfg)`` builds the application; ``ApiServer(sup, cfg).start()`` serves it with
uvicorn in a background thread. Routes live in :mod:`supervisor.api.routes`, one module per
resource; access control is in :mod:`supervisor.api.auth`.
"""

from supervisor.api.app import create_app
from supervisor.api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
