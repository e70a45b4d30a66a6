"""One module per resource; ``root_router`` is served at ``/``, ``api_router`` under ``/api/v1``."""

from fastapi import APIRouter

from supervisor.api.routes.alarms import router as alarms_router
from supervisor.api.routes.commands import router as commands_router
from supervisor.api.routes.devices import router as devices_router
from supervisor.api.routes.events import router as events_router
from supervisor.api.routes.health import router as health_router
from supervisor.api.routes.ingest import router as ingest_router
from supervisor.api.routes.maintenance import router as maintenance_router
from supervisor.api.routes.metrics import router as metrics_router
from supervisor.api.routes.model import router as model_router
from supervisor.api.routes.opendata import router as opendata_router
from supervisor.api.routes.overrides import router as overrides_router
from supervisor.api.routes.rules import router as rules_router
from supervisor.api.routes.session import router as session_router
from supervisor.api.routes.summary import router as summary_router

root_router = APIRouter()
root_router.include_router(health_router)
root_router.include_router(metrics_router)
root_router.include_router(opendata_router)  # /open/: public, no token (docs/open-data.md)

api_router = APIRouter()
for _router in (summary_router, devices_router, ingest_router, model_router, alarms_router, maintenance_router,
                rules_router, commands_router, overrides_router, events_router,
                session_router):
    api_router.include_router(_router)

__all__ = ["api_router", "root_router"]
