"""``opendata``: the privacy-safe open-data export and its publication under ``/open/`` (docs/open-data.md)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

ETALAB_2_0 = "https://spdx.org/licenses/etalab-2.0.html"
_AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenDataConfig(_Section):
    # the scheduled export, inside `urban-supervisor run`: every day at `at` (UTC, HH:MM) the previous
    # UTC day is exported, once; missed days (supervisor down) are caught up, at most `catch_up_days`
    enabled: bool = False
    at: str = "02:30"
    catch_up_days: int = Field(7, ge=1, le=366)
    out_dir: Path = Path("opendata")  # under data_dir when relative
    # a water cell (district x day) aggregating fewer than k meters is suppressed, and says so
    k: int = Field(10, ge=2)
    licence: str = "Licence Ouverte 2.0 (Etalab)"
    licence_url: str = ETALAB_2_0
    publisher: str = "City"
    title_prefix: str = ""
    # the full-power baseline of the lighting savings: working lamps x rated lamp power while the
    # cabinet draws more than its standby (the same definition as the Lighting board's savings panel)
    lamp_rated_w: float = Field(60.0, gt=0)
    standby_w: float = Field(20.0, ge=0)
    # GET /open/: the catalogue and the files, without a token, rate-limited per client address
    publish: bool = False
    base_url: str | None = None  # absolute URL of /open/ in the catalogue (relative links when unset)
    rate_per_second: float = Field(5.0, gt=0)
    burst: int = Field(30, ge=1)

    @field_validator("at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _AT.fullmatch(v):
            raise ValueError(f"must be a UTC time HH:MM (00:00 to 23:59), got {v!r}")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {v!r}")
        return v.rstrip("/") + "/" if v else v

    def at_seconds(self) -> int:
        """``at`` as seconds after midnight UTC."""
        hh, mm = self.at.split(":")
        return int(hh) * 3600 + int(mm) * 60

    def out_path(self, data_dir: Path) -> Path:
        return self.out_dir if self.out_dir.is_absolute() else data_dir / self.out_dir
