"""Push mode: keep an external NGSI-LD broker in sync, through a durable outbox (``ngsi.push``).

Every ``scan_interval_s`` the pusher looks for entities whose device changed (a new reading, a new
status) since it last looked, builds them, and *offers* them to the outbox. The outbox
(SQLite in WAL mode, :class:`~supervisor.walstore.WalStore`) keeps **one row per entity**, its
latest state:

- *changes only*: an offer whose body is the one already queued or sent is dropped (digest);
- *never older*: an offer replaces the row only if its ``version`` (the device's time of the
  state shown) is not older than the row's, so a send always carries the newest state known;
- *rate-limited per entity*: a changed entity waits until ``min_interval_s`` after its last send.

Due rows go out in batches of ``batch_size`` as ``POST <url>/ngsi-ld/v1/entityOperations/upsert``
(``application/ld+json``, each entity with its ``@context``). 201/204: every entity is synced;
207: the ones listed in ``success`` are, those in ``errors`` are refused (``failed``, counted,
sent again at their next change); a 4xx answer (but 408/429) refuses the batch the same way; a
connection error, 408, 429 or 5xx keeps every row pending and retries it with exponential backoff
up to ``retry_max_s``: nothing is lost while the broker is down, and a restart resumes from the file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from supervisor.ngsi.config import NgsiPushConfig
from supervisor.ngsi.entities import ENTITY_TYPES, Entity
from supervisor.ngsi.view import Candidate, LiveReader, NgsiView
from supervisor.walstore import WalStore

_log = logging.getLogger(__name__)
UPSERT_PATH = "/ngsi-ld/v1/entityOperations/upsert"
RETRYABLE = frozenset({408, 429})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY,
    version REAL NOT NULL,
    digest TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_sent REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS entities_due ON entities (state, next_attempt);
"""


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    version: float  # the device's time of the state the body shows (0: no reading)
    body: Entity

    @property
    def digest(self) -> str:
        return hashlib.sha256(orjson.dumps(self.body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class PushOutbox:
    """The latest state of every entity, and whether the broker has it."""

    def __init__(self, path: Path, min_interval_s: float) -> None:
        self._store = WalStore(path, _SCHEMA)
        self.min_interval_s = min_interval_s

    def close(self) -> None:
        self._store.close()

    def offer(self, offers: Sequence[Offer], now: float) -> int:
        """Queue what changed; returns the rows queued (new or replaced)."""
        with self._store.tx() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO entities (id, version, digest, body, next_attempt) VALUES (?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET version=excluded.version, digest=excluded.digest, body=excluded.body, "
                "state='pending', attempts=0, last_error=NULL, next_attempt=MAX(excluded.next_attempt, "
                "entities.last_sent + ?) "
                "WHERE excluded.version >= entities.version AND excluded.digest != entities.digest",
                [(o.id, o.version, o.digest, orjson.dumps(o.body).decode(), now, self.min_interval_s) for o in offers])
            return db.total_changes - before

    def due(self, now: float, limit: int) -> list[tuple[str, float, Entity]]:
        with self._store.read() as db:
            rows = db.execute("SELECT id, version, body FROM entities WHERE state='pending' AND next_attempt<=? "
                              "ORDER BY next_attempt, id LIMIT ?", (now, limit)).fetchall()  # fmt: skip
        return [(i, v, orjson.loads(b)) for i, v, b in rows]

    def sent(self, items: Sequence[tuple[str, float]], now: float) -> None:
        """The broker has these (id, version): a row replaced meanwhile by a newer state stays pending."""
        with self._store.tx() as db:
            db.executemany("UPDATE entities SET last_sent=?, state=CASE WHEN version=? THEN 'sent' ELSE state END, "
                           "attempts=0, next_attempt=MAX(next_attempt, ? + ?) WHERE id=?",
                           [(now, v, now, self.min_interval_s, i) for i, v in items])

    def failed(self, items: Sequence[tuple[str, float]], error: str) -> None:
        """The broker refused these entities: kept as ``failed`` until their next change."""
        with self._store.tx() as db:
            db.executemany("UPDATE entities SET state='failed', last_error=? WHERE id=? AND version=?",
                           [(error[:500], i, v) for i, v in items])

    def retry(self, ids: Sequence[str], now: float, max_wait: float, error: str) -> None:
        with self._store.tx() as db:
            db.executemany("UPDATE entities SET attempts=attempts+1, last_error=?, "
                           "next_attempt=? + MIN(?, 1 << MIN(attempts, 16)) WHERE id=?",
                           [(error[:500], now, max_wait, i) for i in ids])

    def next_due(self) -> float | None:
        with self._store.read() as db:
            (t,) = db.execute("SELECT MIN(next_attempt) FROM entities WHERE state='pending'").fetchone()
        return None if t is None else float(t)

    def counts(self) -> dict[str, int]:
        with self._store.read() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM entities GROUP BY state").fetchall()
        return {"pending": 0, "sent": 0, "failed": 0} | {s: n for s, n in rows}


class Broker:
    """``POST`` of one batch to the upsert endpoint; the answer as (sent, refused, retry error)."""

    def __init__(self, cfg: NgsiPushConfig) -> None:
        assert cfg.url is not None
        self.url = cfg.url.rstrip("/") + UPSERT_PATH
        self.timeout = cfg.timeout_s
        self.headers = {"Content-Type": "application/ld+json", "Accept": "application/json"}
        if cfg.tenant:
            self.headers["NGSILD-Tenant"] = cfg.tenant
        if cfg.token is not None:
            self.headers["Authorization"] = f"Bearer {cfg.token.get_secret_value()}"

    def upsert(self, entities: Sequence[Entity]) -> tuple[set[str], dict[str, str], str | None]:
        ids = {str(e["id"]) for e in entities}
        data = orjson.dumps(list(entities))
        req = urllib.request.Request(self.url, data=data, headers=self.headers, method="POST")  # noqa: S310 - http(s) only, validated
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only, validated
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (OSError, ValueError) as exc:
            return set(), {}, f"broker unreachable: {exc}"
        if status in (200, 201, 204):
            return ids, {}, None
        if status == 207:
            return _multi_status(ids, body)
        if status in RETRYABLE or status >= 500:
            return set(), {}, f"broker answered {status}"
        return set(), {i: f"broker refused the batch: {status} {body[:200]!r}" for i in ids}, None


def _multi_status(ids: set[str], body: bytes) -> tuple[set[str], dict[str, str], str | None]:
    try:
        doc = orjson.loads(body)
        errors = {str(e["entityId"]): orjson.dumps(e.get("error", e)).decode() for e in doc.get("errors", [])}
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        return set(), {}, f"broker answered 207 with an unreadable body: {body[:200]!r}"
    return ids - set(errors), {i: e for i, e in errors.items() if i in ids}, None


class NgsiPusher:
    """Scans the view for changed entities and drains the outbox to the broker, in its own thread."""

    def __init__(self, cfg: NgsiPushConfig, data_dir: Path, view: NgsiView, live: LiveReader,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.view = view
        self.live = live
        self.clock = clock
        self.outbox = PushOutbox(data_dir / cfg.outbox_file, cfg.min_interval_s)
        self.broker = Broker(cfg)
        self._seen: dict[str, tuple[str, float] | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats: dict[str, Any] = {"scans": 0, "offered": 0, "requests": 0, "sent": 0, "refused": 0,
                                      "retries": 0, "last_error": None}

    # -- scanning ----------------------------------------------------------------------------------
    def scan(self) -> int:
        """Offer every entity whose device changed since the last scan; returns the rows queued."""
        cands = self.view.candidates(ENTITY_TYPES, self.live)
        queued = 0
        for i in range(0, len(cands), 2000):
            part = cands[i:i + 2000]
            states = self.live([c.ref for c in part if c.source == "device"])
            changed: dict[str, tuple[Candidate, tuple[str, float] | None]] = {}
            for c in part:
                st = states.get(c.ref) if c.source == "device" else None
                key = (st.status, st.last_ts) if st is not None else None
                if c.id not in self._seen or self._seen[c.id] != key:
                    changed[c.id] = (c, key)
            if changed:
                built = self.view.build([c for c, _ in changed.values()], self.live)
                queued += self.outbox.offer([Offer(str(e["id"]), _version(e), e) for e in built], self.clock())
                self._seen.update({i: key for i, (_, key) in changed.items()})  # once safely in the outbox
        self.stats["scans"] += 1
        self.stats["offered"] += queued
        return queued

    # -- sending -----------------------------------------------------------------------------------
    def flush(self) -> int:
        """Send due entities in batches until none is due or the broker fails; returns entities synced."""
        synced = 0
        while not self._stop.is_set():
            batch = self.outbox.due(self.clock(), self.cfg.batch_size)
            if not batch:
                break
            sent, refused, error = self.broker.upsert([body for _, _, body in batch])
            self.stats["requests"] += 1
            versions = {i: v for i, v, _ in batch}
            now = self.clock()
            if error is not None:
                self.outbox.retry(list(versions), now, self.cfg.retry_max_s, error)
                self.stats["retries"] += 1
                self.stats["last_error"] = error
                _log.warning("ngsi push: %s; %d entities kept for a retry", error, len(batch))
                break
            self.outbox.sent([(i, versions[i]) for i in sent], now)
            if refused:
                self.outbox.failed([(i, versions[i]) for i in refused], "; ".join(list(refused.values())[:3]))
                _log.error("ngsi push: the broker refused %d entities, e.g. %s", len(refused),
                           next(iter(refused.items())))
            synced += len(sent)
            self.stats["sent"] += len(sent)
            self.stats["refused"] += len(refused)
        return synced

    # -- the thread --------------------------------------------------------------------------------
    def start(self) -> NgsiPusher:
        self._thread = threading.Thread(target=self._run, name="ngsi-push", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.outbox.close()

    def _run(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_scan:
                    self.scan()
                    next_scan = time.monotonic() + self.cfg.scan_interval_s
                self.flush()
            except Exception:  # a bug must not end the sync: logged, tried again at the next round
                _log.exception("ngsi push: round failed")
            due = self.outbox.next_due()
            wait = next_scan - time.monotonic()
            if due is not None:
                wait = min(wait, due - self.clock())
            self._stop.wait(min(max(wait, 0.05), self.cfg.scan_interval_s))


def _version(entity: Entity) -> float:
    """The device's time of the state an entity shows: its newest ``observedAt`` (0 when none)."""
    from datetime import datetime

    times = [v["observedAt"] for v in entity.values() if isinstance(v, dict) and "observedAt" in v]
    return max((datetime.fromisoformat(t).timestamp() for t in times), default=0.0)
