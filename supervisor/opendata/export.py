"""Export one period: the datasets' CSV files and Table Schemas, the inventory, the DCAT-AP catalogue.

Durability and idempotence, for the scheduled run and the CLI alike:

- every file is written to a temporary name in the output directory, flushed to disk, then renamed
  over its final name: a reader (``GET /open/``) sees the old file or the new one, never half a file;
- a period is recorded in the state file (``.opendata-state.json``, with each file's size and
  SHA-256) only once all its files are in place, and the catalogue is rebuilt from that record:
  a run interrupted midway left no record, so it is redone; a recorded period is not exported again
  by the schedule (:meth:`OpenDataExport.done`);
- one export at a time per directory (an exclusive ``flock`` on ``.opendata.lock``).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.opendata.datasets import DATASETS, DAY, Cell, Dataset, day, iso
from supervisor.opendata.inventory import INVENTORY_TITLES, inventories

if TYPE_CHECKING:
    from supervisor.model import CityModel
    from supervisor.opendata.config import OpenDataConfig
    from supervisor.opendata.source import InfluxReader

_log = logging.getLogger(__name__)

STATE_FILE = ".opendata-state.json"
LOCK_FILE = ".opendata.lock"
CATALOGUE = "catalog.jsonld"
MEDIA = {".csv": "text/csv", ".geojson": "application/geo+json", ".json": "application/json",
         ".jsonld": "application/ld+json"}
_IANA = "https://www.iana.org/assignments/media-types/"
_FREQ = "http://publications.europa.eu/resource/authority/frequency/"


class ExportError(Exception):
    """An export that cannot run: bad period, unreadable storage; the message says which."""


@dataclass(frozen=True, slots=True)
class Period:
    start: int  # epoch s, a UTC midnight
    end: int  # exclusive, a later UTC midnight

    @classmethod
    def days(cls, first: str, end: str) -> Period:
        """``--from 2026-11-01 --to 2026-11-08``: the UTC days from ``first`` to ``end`` excluded."""
        try:
            a = datetime.strptime(first, "%Y-%m-%d").replace(tzinfo=UTC)
            b = datetime.strptime(end, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as exc:
            raise ExportError(f"dates must be YYYY-MM-DD (UTC days): {exc}") from None
        if b <= a:
            raise ExportError(f"--to {end} must be after --from {first} (--to is excluded)")
        if (b - a).days > 366:
            raise ExportError(f"a period is at most 366 days, got {(b - a).days}")
        return cls(int(a.timestamp()), int(b.timestamp()))

    @property
    def key(self) -> str:
        return f"{day(self.start)}_{day(self.end)}"


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or its previous content, never a part: a temporary file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def csv_bytes(ds: Dataset, rows: Sequence[tuple[Cell, ...]]) -> bytes:
    """UTF-8, comma-separated, ``.`` decimals, ISO 8601 dates, ``true``/``false``, empty for missing."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.name for c in ds.columns])
    for row in rows:
        w.writerow(["" if v is None else ("true" if v is True else "false" if v is False else v) for v in row])
    return buf.getvalue().encode("utf-8")


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _entry(name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}


class OpenDataExport:
    """The open-data directory ``out_dir``: exports into it, its state, its catalogue."""

    def __init__(self, out_dir: Path, cfg: OpenDataConfig, model: CityModel) -> None:
        self.dir, self.cfg, self.model = Path(out_dir), cfg, model

    # -- state ---------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads((self.dir / STATE_FILE).read_bytes())
        except FileNotFoundError:
            return {"version": 1, "periods": {}, "static": []}
        except ValueError as exc:
            raise ExportError(f"{self.dir / STATE_FILE}: unreadable state ({exc}); move it away to start over") \
                from None
        return doc

    def done(self, period: Period) -> bool:
        return period.key in self.state().get("periods", {})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- the export ----------------------------------------------------------------------------------
    def run(self, src: InfluxReader, period: Period, *, again: bool = True) -> dict[str, Any] | None:
        """Export ``period``: the files, then the record, then the catalogue. A period already recorded
        is exported again, unless ``again`` is false (the schedule): then None."""
        t0 = time.monotonic()
        with self._locked():
            if not again and self.done(period):
                return None
            files: list[dict[str, Any]] = []
            for ds in DATASETS.values():
                rows = ds.build(src, self.model, self.cfg, period.start, period.end)
                data = csv_bytes(ds, rows)
                name = f"{ds.name}_{period.key}.csv"
                write_atomic(self.dir / name, data)
                suppressed = sum(1 for r in rows if ds.name == "water-daily" and r[5] is True)
                files.append(_entry(name, data, dataset=ds.name, rows=len(rows), suppressed=suppressed))
            static = self._write_static()
            state = self.state()
            state["periods"][period.key] = {"start": iso(period.start), "end": iso(period.end),
                                            "finished_at": iso(int(time.time())), "files": files}
            state["static"] = static
            # the record first: the catalogue never lists what is not recorded (and so not served)
            write_atomic(self.dir / STATE_FILE, _json(state))
            self._write_catalogue(state)
        return {"period": period.key, "files": files, "seconds": round(time.monotonic() - t0, 2)}

    def _write_static(self) -> list[dict[str, Any]]:
        """The Table Schemas and the inventory (the same for every period: rewritten by each)."""
        out = []
        for ds in DATASETS.values():
            data = _json(ds.table_schema(self.cfg.k))
            name = f"{ds.name}.schema.json"
            write_atomic(self.dir / name, data)
            out.append(_entry(name, data, dataset=ds.name))
        for name, doc in inventories(self.model).items():
            data = _json(doc)
            write_atomic(self.dir / name, data)
            out.append(_entry(name, data, features=len(doc["features"])))
        return out

    # -- the DCAT-AP catalogue -------------------------------------------------------------------------
    def _url(self, name: str) -> str:
        return (self.cfg.base_url or "") + name

    def _write_catalogue(self, state: dict[str, Any]) -> None:
        write_atomic(self.dir / CATALOGUE, _json(catalogue(self.cfg, self.model, state, self._url)))



def published_file(out_dir: Path, name: str) -> tuple[Path, str] | None:
    """The file ``GET /open/<name>`` serves (``""``: the catalogue) and its media type, or None.

    Only the catalogue and the files the state records are served: a name is looked up in that list,
    never joined to the directory as given, so no path (``..``, ``/``, a symlink, the state file
    itself) can reach anything else.
    """
    name = name or CATALOGUE
    try:
        state = json.loads((out_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    names = {f["name"] for p in state.get("periods", {}).values() for f in p["files"]}
    names |= {f["name"] for f in state.get("static", [])} | {CATALOGUE}
    if name not in names:
        return None
    path = out_dir / name
    if path.parent != out_dir or not path.is_file():
        return None
    return path, MEDIA[path.suffix]


def _typed(value: str | int, kind: str) -> dict[str, str]:
    return {"@value": str(value), "@type": f"xsd:{kind}"}


def _distribution(cfg: OpenDataConfig, url: Any, f: dict[str, Any], title: str, **extra: Any) -> dict[str, Any]:
    media = MEDIA[Path(f["name"]).suffix]
    return {"@id": url(f["name"]), "@type": "dcat:Distribution", "dct:title": title,
            "dcat:downloadURL": {"@id": url(f["name"])}, "dcat:accessURL": {"@id": url(f["name"])},
            "dcat:mediaType": {"@id": _IANA + media}, "dct:format": media,
            "dcat:byteSize": _typed(f["bytes"], "nonNegativeInteger"),
            "spdx:checksum": {"@type": "spdx:Checksum", "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
                              "spdx:checksumValue": f["sha256"]},
            "dct:license": {"@id": cfg.licence_url}, **extra}


def catalogue(cfg: OpenDataConfig, model: CityModel, state: dict[str, Any], url: Any) -> dict[str, Any]:
    """The DCAT-AP 2 catalogue (JSON-LD) of what ``state`` records."""
    b = model.bounds
    bbox = (f"POLYGON(({b[0]} {b[1]}, {b[2]} {b[1]}, {b[2]} {b[3]}, {b[0]} {b[3]}, {b[0]} {b[1]}))")
    spatial = {"@type": "dct:Location", "dcat:bbox": {"@value": bbox, "@type": "gsp:wktLiteral"}}
    publisher = {"@type": "foaf:Agent", "foaf:name": cfg.publisher}
    licence = {"@id": cfg.licence_url, "@type": "dct:LicenseDocument", "dct:title": cfg.licence}
    prefix = f"{cfg.title_prefix} " if cfg.title_prefix else ""
    freq = {"@id": _FREQ + ("DAILY" if cfg.enabled else "IRREG")}
    periods = sorted(state.get("periods", {}).values(), key=lambda p: (p["start"], p["end"]))
    static = {f["name"]: f for f in state.get("static", [])}
    datasets: list[dict[str, Any]] = []

    def dataset(ident: str, title: str, description: str, dists: list[dict[str, Any]], *, start: str | None,
                end: str | None, keywords: Sequence[str], **extra: Any) -> None:
        d: dict[str, Any] = {
            "@id": url(f"#{ident}"), "@type": "dcat:Dataset", "dct:identifier": ident, "dct:title": prefix + title,
            "dct:description": description, "dcat:keyword": list(keywords), "dct:publisher": publisher,
            "dct:license": {"@id": cfg.licence_url}, "dct:accrualPeriodicity": freq, "dct:spatial": spatial,
            "dcat:distribution": dists, **extra}
        if start and end:
            d["dct:temporal"] = {"@type": "dct:PeriodOfTime", "dcat:startDate": _typed(start, "dateTime"),
                                 "dcat:endDate": _typed(end, "dateTime")}
        datasets.append(d)

    for ds in DATASETS.values():
        dists = []
        schema = static.get(f"{ds.name}.schema.json")
        for p in periods:
            for f in p["files"]:
                if f.get("dataset") == ds.name:
                    extra = {"dct:conformsTo": {"@id": url(schema["name"])}} if schema else {}
                    dists.append(_distribution(cfg, url, f, f"{ds.title}, {p['start'][:10]} to {p['end'][:10]}",
                                               **extra, **{"dct:temporal": {
                                                   "@type": "dct:PeriodOfTime",
                                                   "dcat:startDate": _typed(p["start"], "dateTime"),
                                                   "dcat:endDate": _typed(p["end"], "dateTime")}}))
        if schema:
            dists.append(_distribution(cfg, url, schema, f"{ds.title}: Table Schema (frictionless)"))
        have = [p for p in periods if any(f.get("dataset") == ds.name for f in p["files"])]
        conforms = [{"@id": u} for u in ds.conforms_to]
        dataset(ds.name, ds.title, ds.description, dists, start=have[0]["start"] if have else None,
                end=max(p["end"] for p in have) if have else None, keywords=ds.keywords,
                **({"dct:conformsTo": conforms} if conforms else {}))
    for name, (title, description) in INVENTORY_TITLES.items():
        if name in static:
            dataset(name.removesuffix(".geojson"), title, description,
                    [_distribution(cfg, url, static[name], f"{title} (GeoJSON)")], start=None, end=None,
                    keywords=("inventaire",))
    return {
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                     "foaf": "http://xmlns.com/foaf/0.1/", "spdx": "http://spdx.org/rdf/terms#",
                     "xsd": "http://www.w3.org/2001/XMLSchema#", "gsp": "http://www.opengis.net/ont/geosparql#"},
        "@id": url(""), "@type": "dcat:Catalog",
        "dct:title": f"{prefix}Open data of {model.name or 'the city'}",
        "dct:description": "Privacy-safe aggregates of the city's shared IoT network (traffic, street lighting, "
                           "water, air quality) and the public part of its inventory, exported by "
                           "urban-supervisor.",
        "dct:publisher": publisher, "dct:license": licence, "dct:spatial": spatial,
        "dct:modified": _typed(iso(int(time.time())), "dateTime"),
        "dcat:dataset": datasets,
    }


def day_periods(first: int, last_end: int) -> list[Period]:
    """The UTC days from ``first`` to ``last_end`` (both midnights)."""
    return [Period(t, t + DAY) for t in range(first, last_end, DAY)]
