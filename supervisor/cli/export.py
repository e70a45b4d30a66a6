"""``urban-supervisor export opendata --from DAY --to DAY --out DIR``: the open-data export, on demand.

Reads the stored measurements (``storage``, InfluxDB 1.x) and the city model (``city``) of the
configuration (``--config``, ``URBAN_*`` overrides), writes the datasets, their Table Schemas, the
public inventory and the DCAT-AP catalogue into DIR (docs/open-data.md). Prints a JSON summary;
exit 0 on success, 2 on bad input (dates, configuration, city file), 1 when the storage fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from supervisor.cli import EXIT_FAILURE, EXIT_INVALID, EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export data for others: open data (CSV, GeoJSON, DCAT-AP catalogue)")
    what = p.add_subparsers(dest="export_command", required=True, metavar="WHAT")
    od = what.add_parser("opendata", help="privacy-safe aggregates, the public inventory and their catalogue",
                         description="Export the open datasets of the UTC days [--from, --to) into --out.")
    od.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD", help="first UTC day")
    od.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD",
                    help="the UTC day after the last one (excluded): a week is --from 2026-11-02 --to 2026-11-09")
    od.add_argument("--out", metavar="DIR", default=None, help="output directory (default: opendata.out_dir)")
    od.add_argument("--config", "-c", metavar="FILE", help="YAML configuration (URBAN_* env vars override it)")
    od.add_argument("--city", metavar="FILE", default=None, help="city file (default: the configuration's `city`)")
    od.add_argument("--k", type=int, default=None, help="suppress water cells of fewer than K meters "
                    "(default: opendata.k, 10)")
    od.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from supervisor.config import ConfigFileError, load_settings
    from supervisor.opendata import ExportError, OpenDataExport, Period
    from supervisor.opendata.source import InfluxReader
    from supervisor.storage import StorageConfigError, StorageError

    try:
        settings = load_settings(args.config)
        cfg = settings.opendata
        if args.k is not None:
            if args.k < 2:
                raise ExportError(f"--k must be at least 2, got {args.k}")
            cfg = cfg.model_copy(update={"k": args.k})
        city = args.city or settings.city
        if city is None:
            raise ExportError("no city file: pass --city FILE or set `city` in the configuration")
        period = Period.days(args.first, args.end)
        out = Path(args.out) if args.out else cfg.out_path(settings.data_dir)
        from supervisor.model import load_city

        model = load_city(city)
        reader = InfluxReader(settings.storage)
    except (ConfigFileError, ExportError, StorageConfigError) as exc:
        print(f"urban-supervisor export: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # city file errors carry their own precise messages
        print(f"urban-supervisor export: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        result = OpenDataExport(out, cfg, model).run(reader, period)
        assert result is not None  # again=True: always exported
    except (StorageError, ExportError, OSError) as exc:
        print(f"urban-supervisor export: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        reader.close()
    print(json.dumps({"out": str(out), **result}, indent=2))
    return EXIT_OK
