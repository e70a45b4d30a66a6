"""Building the parts from the configuration: drivers, subscriptions, storage paths."""

from __future__ import annotations

import logging

from drivers import Driver, DriverError
from drivers import get as get_driver
from supervisor.config import Settings, StorageConfig
from supervisor.notify import NotificationConfigError, Notifier, check_reachable
from supervisor.service.errors import SupervisorError

_log = logging.getLogger(__name__)


def build_drivers(settings: Settings) -> dict[str, Driver]:
    out: dict[str, Driver] = {}
    for name, dcfg in settings.drivers.items():
        if not dcfg.enabled:
            continue
        try:
            cls = get_driver(name)
        except KeyError as exc:
            raise SupervisorError(f"drivers.{name}: {exc}") from None
        try:
            out[name] = cls(dcfg.options)
        except DriverError as exc:
            raise SupervisorError(f"drivers.{name}.options: {exc}") from None
    if not out:
        raise SupervisorError("drivers: no driver enabled")
    return out


def subscription_roots(filters: list[str]) -> list[str]:
    """``root/#`` for each filter whose first level is literal, the filter itself otherwise."""
    out: list[str] = []
    for flt in filters:
        first = flt.split("/", 1)[0]
        sub = flt if first in ("+", "#") or "/" not in flt else f"{first}/#"
        if sub not in out:
            out.append(sub)
    return out


def storage_config(settings: Settings) -> StorageConfig:
    """The storage configuration with relative spool and SQLite paths under ``data_dir``."""
    st = settings.storage
    update = {}
    for key in ("spool_dir", "sqlite_path"):
        path = getattr(st, key)
        if not path.is_absolute():
            update[key] = settings.data_dir / path
    return st.model_copy(update=update)


def settle_time(settings: Settings) -> float:
    """How long after a start a restored alarm waits for its source to raise it again: until the
    slowest family's devices would have gone stale, plus one status check."""
    st = settings.state
    slowest = max((fs.interval for fs in st.families.values()), default=300.0)
    return st.stale_factor * float(slowest) + float(st.check_interval)


def build_notifier(settings: Settings) -> Notifier | None:
    """The notifier when a route is configured, its SMTP relays checked first (an unreachable one is
    a :class:`SupervisorError`: ``run`` exits 2); channels without a route send nothing (warned)."""
    cfg = settings.notifications
    if cfg.channels and not cfg.routes:
        _log.warning("notifications: channels %s but no route: nothing will be notified",
                     ", ".join(sorted(cfg.channels)))
    if not cfg.routes:
        return None
    try:
        check_reachable(cfg)
    except NotificationConfigError as exc:
        raise SupervisorError(f"notifications: {exc}") from None
    return Notifier(cfg, settings.data_dir)
