"""Reading the stored measurements back: InfluxQL ``SELECT`` over the v1 HTTP API.

:class:`InfluxReader` is the storage's own v1 client (:class:`~supervisor.storage._influx.InfluxV1Sink`:
keep-alive connection, TLS, Basic auth kept out of ``repr`` and errors) with a read method: the
export needs aggregates (``mean``, ``integral``, ``non_negative_difference``) that InfluxDB computes
far faster than Python over raw points, and only InfluxQL reaches them on 1.x. InfluxDB 2.x is not
read yet (its InfluxQL compatibility needs a DBRP mapping; not tested): refused with a clear error.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from supervisor.config import StorageConfig
from supervisor.storage import schema
from supervisor.storage._errors import StorageConfigError, StorageError
from supervisor.storage._influx import InfluxV1Sink, _error_text
from supervisor.storage.retention import raw_sources


@dataclass(frozen=True, slots=True)
class Row:
    """One row of an answer: its series' tags, its time (epoch s) and its values by column."""

    tags: dict[str, str]
    time: int
    values: dict[str, Any]


class InfluxReader(InfluxV1Sink):
    """``select(q)``: the rows of one or several statements (``;``-separated), in statement order."""

    def __init__(self, cfg: StorageConfig, *, timeout: float = 300.0) -> None:
        if cfg.backend != "influx-v1":
            raise StorageConfigError(f"the open-data export reads InfluxDB 1.x only (storage.backend influx-v1), "
                                     f"not {cfg.backend}")
        super().__init__(cfg.url, cfg.database, retention_policy=cfg.retention_policy, username=cfg.username,
                         password=cfg.password, gzip=False, timeout=timeout, create_database=False,
                         name="opendata-reader")
        self._cfg = cfg
        self._policies: set[str] | None = None

    def measurement(self, name: str) -> str:
        """``"db"."rp"."name"``: statements name the database themselves. A personal measurement
        (household water) is read from its own retention policy as well, when the database has it
        (``supervisor.storage.retention.raw_sources``): the supervisor writes it there once
        retention is provisioned, and points written before stay in the default policy."""
        rp = f'"{self.retention_policy}"' if self.retention_policy else ""
        default = f'"{self.database}".{rp}."{name}"'
        if not (self._cfg.retention.enabled and schema.MEASUREMENTS[name].personal):
            return default
        if self._policies is None:
            self._policies = self._policy_names()
        return ", ".join([default] + [f'"{self.database}".{src}' for src in
                                      raw_sources(name, self._policies, self._cfg)[1:]])

    def _policy_names(self) -> set[str]:
        """The database's retention policies (``SHOW RETENTION POLICIES``: rows without a time)."""
        body = urllib.parse.urlencode({"q": f'SHOW RETENTION POLICIES ON "{self.database}"'}).encode()
        status, data, _ = self._request("POST", "/query", body,
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise StorageError(status == 429 or status >= 500, status, f"{self.name}: query failed: "
                               f"{_error_text(data)}")
        try:
            series = json.loads(data)["results"][0].get("series", [])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise StorageError(True, status, f"{self.name}: unreadable query answer") from None
        return {str(v[0]) for s in series for v in s.get("values", [])}

    def select(self, q: str) -> list[list[Row]]:
        """The rows of each statement of ``q`` (times in epoch seconds)."""
        body = urllib.parse.urlencode({"q": q, "db": self.database, "epoch": "s"}).encode()
        status, data, _ = self._request("POST", "/query", body,
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise StorageError(status == 429 or status >= 500, status, f"{self.name}: query failed: "
                               f"{_error_text(data)}")
        try:
            results: list[dict[str, Any]] = json.loads(data).get("results", [])
        except (ValueError, AttributeError):
            raise StorageError(True, status, f"{self.name}: unreadable query answer") from None
        out: list[list[Row]] = []
        for res in results:
            if "error" in res:
                raise StorageError(False, status, f"{self.name}: query failed: {res['error']}")
            out.append(list(_rows(res)))
        return out


def _rows(res: dict[str, Any]) -> Iterator[Row]:
    for s in res.get("series", []):
        cols: list[str] = s["columns"]
        tags = s.get("tags") or {}
        for v in s.get("values", []):
            yield Row(tags, int(v[0]), dict(zip(cols[1:], v[1:], strict=True)))
