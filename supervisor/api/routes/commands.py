"""Commands: their tracked state (``GET /api/v1/commands``) and direct commands (``POST``, operator).

A direct command goes straight to the device's driver and MQTT, outside the rule engine's
arbitration: the next rule decision may change the level again (use an override to hold it).
It is refused with 404 for a device the supervisor does not know (not in the network model), and
with 422 for a value that does not fit the action or a device whose driver cannot express it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, model_validator

from drivers import Command
from supervisor.api.deps import OperatorDep, RulesDep, ServiceDep, ViewerDep
from supervisor.api.errors import responses

router = APIRouter(prefix="/commands", tags=["commands"])

CommandState = Literal["pending", "confirmed", "failed"]


@router.get("", name="commands-list", responses=responses(503))
def list_commands(
    svc: ServiceDep,
    _: ViewerDep,
    _rules: RulesDep,
    state: Annotated[CommandState | None, Query()] = None,
) -> dict[str, Any]:
    """Last command the rule engine sent per actuator (``device`` or ``device/circuit``) and its state."""
    return svc.commands(state)


@router.get("/{device_id}/history", name="commands-history", responses=responses(404, 503))
def command_history(device_id: str, svc: ServiceDep, _: ViewerDep, _rules: RulesDep) -> dict[str, Any]:
    """The latest states of the commands the rule engine sent to a device (each channel's too), newest
    first: level, state (pending, confirmed, failed), attempts, times, error. The last 20 are kept."""
    return svc.command_history(device_id)


class CommandIn(BaseModel):
    """``value`` depends on ``action`` (the schema's ``oneOf``): a boolean to switch, a level to dim."""

    model_config = ConfigDict(strict=True, json_schema_extra={"oneOf": [
        {"properties": {"action": {"const": "switch"}, "value": {"type": "boolean"}}},
        {"properties": {"action": {"const": "set_level"}, "value": {"type": "number", "minimum": 0, "maximum": 100}}},
    ], "examples": [{"device": "lamp-000001", "action": "set_level", "value": 60},
                    {"device": "cab-0001", "action": "switch", "value": False, "channel": "c1"}]})

    device: str = Field(min_length=1, max_length=200)
    action: Literal["set_level", "switch"]
    value: StrictBool | StrictInt | StrictFloat = Field(
        description="set_level: level in % 0..100 (0 = off); switch: true or false")
    channel: str | None = Field(None, max_length=50, description="cabinet circuit")

    @model_validator(mode="after")
    def _value_fits_action(self) -> CommandIn:
        if self.action == "switch":
            if not isinstance(self.value, bool):
                raise ValueError("switch takes a boolean value (true = on, false = off)")
        elif isinstance(self.value, bool) or not 0.0 <= float(self.value) <= 100.0:
            raise ValueError("set_level takes a number of % in 0..100")
        return self


class CommandOut(BaseModel):
    device: str
    action: str
    value: float | bool
    topics: list[str]  # what was published


@router.post("", name="commands-send", response_model=CommandOut, status_code=status.HTTP_202_ACCEPTED,
             responses=responses(404, 409, 503))
def send_command(body: CommandIn, _: OperatorDep, svc: ServiceDep) -> CommandOut:
    """Publish one command now (202: sent, not confirmed; the device confirms through its telemetry)."""
    value: float | bool = body.value if isinstance(body.value, bool) else float(body.value)
    topics = svc.send_command(Command(body.device, body.action, value, channel=body.channel))
    return CommandOut(device=body.device, action=body.action, value=value, topics=topics)
