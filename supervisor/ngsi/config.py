"""``ngsi.push``: keep an external NGSI-LD context broker (Orion-LD...) in sync (docs/ngsi-ld.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from supervisor.endpoint import ENDPOINT


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NgsiPushConfig(_Section):
    enabled: bool = False
    # the broker's base URL (``https://orion-ld:1026``); upserts go to <url>/ngsi-ld/v1/entityOperations/upsert
    url: Annotated[str | None, ENDPOINT] = None
    tenant: str | None = None  # NGSILD-Tenant header
    token: SecretStr | None = None  # sent as Authorization: Bearer
    scan_interval_s: float = Field(5.0, gt=0)  # how often the state is scanned for changed entities
    min_interval_s: float = Field(10.0, ge=0)  # per entity: at most one upsert per this time
    batch_size: int = Field(100, ge=1, le=1000)  # entities per upsert request
    timeout_s: float = Field(10.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)  # the longest wait between two attempts (exponential backoff)
    outbox_file: Path = Path("ngsi-outbox.sqlite3")  # under data_dir

    @model_validator(mode="after")
    def _target(self) -> NgsiPushConfig:
        if self.enabled and not self.url:
            raise ValueError("ngsi.push.url: required when ngsi.push.enabled is true")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"ngsi.push.url: must be an http:// or https:// URL, got {self.url!r}")
        return self


class NgsiConfig(_Section):
    push: NgsiPushConfig = Field(default_factory=NgsiPushConfig)
