"""Open data: privacy-safe aggregates of the stored measurements, the public inventory, a DCAT-AP
catalogue; exported on demand (``urban-supervisor export opendata``) or daily inside ``run``, and
served under ``GET /open/`` (docs/open-data.md)."""

from supervisor.opendata.config import OpenDataConfig
from supervisor.opendata.datasets import DATASETS, Dataset
from supervisor.opendata.export import CATALOGUE, ExportError, OpenDataExport, Period, published_file, write_atomic
from supervisor.opendata.scheduler import OpenDataScheduler, due_periods

__all__ = ["CATALOGUE", "DATASETS", "Dataset", "ExportError", "OpenDataConfig", "OpenDataExport",
           "OpenDataScheduler", "Period", "due_periods", "published_file", "write_atomic"]
