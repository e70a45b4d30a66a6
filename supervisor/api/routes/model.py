"""The layered network model: GeoJSON layers, element details, impact and shared infrastructure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from supervisor.api import geojson
from supervisor.api._json import to_jsonable
from supervisor.api.contract import links
from supervisor.api.deps import ModelDep, OperatorDep, ServiceDep, ViewerDep
from supervisor.api.errors import responses
from supervisor.api.limits import MAX_PAGE
from supervisor.service.facade import ServiceError

if TYPE_CHECKING:
    from supervisor.model import CityModel  # the model package loads only when a city is configured

router = APIRouter(prefix="/model", tags=["model"])


def _services_of(request: Request, model: CityModel) -> geojson.ServicesOf:
    cached: geojson.ServicesOf | None = getattr(request.app.state, "services_of", None)
    if cached is None or getattr(request.app.state, "services_of_model", None) is not model:
        cached = geojson.ServicesOf(model)
        request.app.state.services_of = cached
        request.app.state.services_of_model = model
    return cached


def _unknown(element_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"element {element_id!r} is not in the network model")


@router.get("/layers/{layer}", name="model-layer", response_model=dict[str, Any], responses=responses(503))
def layer(
    *,
    layer: geojson.Layer,
    request: Request,
    svc: ServiceDep,
    _: ViewerDep,
    model: ModelDep,
    family: Annotated[str | None, Query(description="devices layer only")] = None,
    zone: Annotated[str | None, Query(description="devices layer only")] = None,
) -> Response:
    """A GeoJSON FeatureCollection (WGS 84 lon/lat) of one layer: base (zones and streets), physical,
    l2, l3 or devices."""
    if layer == "base":
        feats = geojson.base(model)
    elif layer == "devices":
        feats = svc.device_layer(lambda m, state: geojson.devices(m, state, family, zone))
    elif layer == "physical":
        feats = geojson.physical(model, _services_of(request, model))
    elif layer == "l2":
        feats = geojson.l2(model, _services_of(request, model))
    else:
        feats = geojson.l3(model)
    # plain JSON values already: encoded by orjson directly (FastAPI's encoder walks every value of
    # 100,000 features first: 10 s against 0.4 s for the devices layer of a 100k-device city)
    return Response(orjson.dumps(geojson.collection(layer, feats)), media_type="application/json")


@router.get("/device-columns", name="model-device-columns", response_model=dict[str, Any], responses=responses(503))
def device_columns(svc: ServiceDep, _: ViewerDep) -> Response:
    """Every device of the model with its current status, as columns (``id``, ``lon``, ``lat``,
    ``family``, ``kind``, ``zone``, ``service``, ``status``, ``fault``: one list each, in the same
    order): the devices layer for a map of a large city, without an object per device."""
    return Response(orjson.dumps(svc.device_layer(geojson.device_columns)), media_type="application/json")


@router.get("/elements/{element_id}", name="model-element", responses=responses(404, 503))
def element(
    element_id: str,
    _: ViewerDep,
    model: ModelDep,
    svc: ServiceDep,
    limit: Annotated[int, Query(ge=0, le=MAX_PAGE, description="dependents listed at most")] = MAX_PAGE,
) -> dict[str, Any]:
    """One element (or device) of the model: what it is, what it needs, and the devices that need it;
    ``observed`` (a radio gateway watched through its LoRaWAN gateway device): its status (up,
    silent, down: observed), why, and its link quality (``link`` ok, degraded or unknown)."""
    from supervisor.model import UnknownElementError

    info = model.elements.get(element_id)
    device: Any = model.devices.get(element_id) if info is None else None
    if info is None and device is None:
        raise _unknown(element_id)
    detail: Any = None
    if info is not None:
        for table in ("sites", "links", "feeders", "switches", "ports", "services", "zones", "streets"):
            obj = getattr(model, table).get(element_id)
            if obj is not None:
                detail = to_jsonable(obj)
                break
    try:
        needs = list(model.dependencies(element_id))
        dependents = sorted(model.dependents(element_id))
    except UnknownElementError:
        raise _unknown(element_id) from None
    if info is not None:
        kind, layer_name = info.kind, info.layer
    else:
        kind, layer_name, detail = device.kind, "device", to_jsonable(device)
    out = {
        "id": element_id,
        "kind": kind,
        "layer": layer_name,
        "detail": detail,
        "dependencies": needs,
        "dependents_total": len(dependents),
        "dependents": dependents[:limit],
    }
    observed = svc.radio_element(element_id) if info is not None and info.kind == "radio_gateway" else None
    if observed is not None:
        out["observed"] = observed
    return out


@router.get("/impact/{element_id}", name="model-impact", responses=responses(404, 503))
def impact(element_id: str, _: ViewerDep, model: ModelDep) -> dict[str, Any]:
    """What fails if this element fails: devices per service and the elements downstream."""
    from supervisor.model import UnknownElementError

    try:
        result = model.impact(element_id)
    except UnknownElementError:
        raise _unknown(element_id) from None
    out: dict[str, Any] = to_jsonable(result)
    return out


@router.get("/drift", name="model-drift", responses=responses(503))
def drift(_: ViewerDep, svc: ServiceDep) -> dict[str, Any]:
    """The network as built against as designed: the switches' LLDP neighbours against the model's
    uplinks (missing, miscabled, unexpected link ends), from the last check (``snmp.lldp_interval``)."""
    try:
        return svc.model_drift()
    except ServiceError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@router.get("/shared", name="model-shared", responses=links(
    200,
    Element=("model-element", {"element_id": "$response.body#/elements/0/element"}),
    Impact=("model-impact", {"element_id": "$response.body#/elements/0/element"}),
) | responses(503))
def shared(_: ViewerDep, model: ModelDep) -> dict[str, Any]:
    """Infrastructure carrying two services or more (the pooling), most shared first."""
    return {"elements": to_jsonable(model.shared_infrastructure())}


@router.post("/reload", name="model-reload", responses=responses(422, 503))
def reload_model(_: OperatorDep, svc: ServiceDep) -> dict[str, Any]:
    """Read the configured city file again, validate it with the start-up loader (and the rules
    against it), then swap it in without a restart: the diff (elements and devices added, removed
    and changed, with the attributes that changed), the rules added, removed and rebuilt, the
    alarms cleared about what was removed. 422 with the loader's problems when the file is refused
    (or, with SNMP on, a switch names credentials the configuration lacks): the running model stays
    in place. 503 when the supervisor started without a city."""
    return svc.reload_model()
