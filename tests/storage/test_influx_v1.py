"""InfluxDB v1 sink against the real InfluxDB 1.6."""

from __future__ import annotations

import logging
import uuid

import pytest

from drivers import Reading
from supervisor.storage import (
    InfluxV1Sink,
    PartialWriteError,
    StorageConfigError,
    StorageError,
    point_line,
    reading_line,
)
from tests.support.services import INFLUX_URL, Influx

pytestmark = pytest.mark.integration
TS = 1_764_115_200_000


def _lines(n: int, device: str = "d", start: int = TS) -> list[bytes]:
    return [reading_line(Reading(device, "traffic", {"flow": float(i), "count": i}, zone="z"), start + i)
            for i in range(n)]


def _count(influx: Influx, db: str, q: str = 'SELECT COUNT("flow") FROM "traffic"') -> int:
    v = influx.scalar(q, db)
    return int(v) if v is not None else 0  # type: ignore[call-overload]


@pytest.mark.parametrize("gz", [True, False])
def test_write_plain_and_gzip(influx: Influx, influx_db: str, gz: bool) -> None:
    sink = InfluxV1Sink(INFLUX_URL, influx_db, gzip=gz, create_database=False)
    try:
        lines = _lines(1000)
        sink.write(b"\n".join(lines), len(lines))
        sink.write(b"\n".join(_lines(10, device="e")), 10)  # same keep-alive connection
    finally:
        sink.close()
    assert _count(influx, influx_db) == 1010
    rows = influx.series('SELECT "flow", "count" FROM "traffic" WHERE "device" = \'d\' AND time = 1764115200007ms',
                         influx_db)
    assert rows[0]["values"] == [[TS + 7, 7.0, 7]]


def test_rewrite_is_idempotent(influx: Influx, influx_db: str) -> None:
    sink = InfluxV1Sink(INFLUX_URL, influx_db, create_database=False)
    body = b"\n".join(_lines(50))
    sink.write(body, 50)
    sink.write(body, 50)
    sink.close()
    assert _count(influx, influx_db) == 50


def test_field_type_conflict_isolates_bad_lines(influx: Influx, influx_db: str) -> None:
    sink = InfluxV1Sink(INFLUX_URL, influx_db, create_database=False)
    try:
        sink.write(point_line("traffic", {"device": "d"}, {"flow": 1.0}, TS - 1), 1)  # flow is a float
        good = _lines(200, start=TS)
        bad = [point_line("traffic", {"device": "x"}, {"flow": "fast"}, TS + 1000 + i) for i in range(3)]
        batch = [*good[:57], bad[0], *good[57:150], *bad[1:], *good[150:]]
        with pytest.raises(PartialWriteError) as info:
            sink.write(b"\n".join(batch), len(batch))
    finally:
        sink.close()
    err = info.value
    assert err.rejected == bad
    assert err.written == 200
    assert not err.retryable and err.status == 400
    assert "field type conflict" in err.detail
    assert _count(influx, influx_db) == 201


def test_retention_policy(influx: Influx, influx_db: str) -> None:
    influx.query(f'CREATE RETENTION POLICY "short" ON "{influx_db}" DURATION 1h REPLICATION 1')
    sink = InfluxV1Sink(INFLUX_URL, influx_db, retention_policy="short", create_database=False)
    try:
        sink.ensure_ready()
        now_ms = int(__import__("time").time() * 1000)
        lines = _lines(20, start=now_ms - 60_000)
        sink.write(b"\n".join(lines), 20)
    finally:
        sink.close()
    assert _count(influx, influx_db, f'SELECT COUNT("flow") FROM "{influx_db}"."short"."traffic"') == 20
    assert _count(influx, influx_db, f'SELECT COUNT("flow") FROM "{influx_db}"."autogen"."traffic"') == 0


def test_missing_retention_policy_is_refused_at_start(influx_db: str) -> None:
    sink = InfluxV1Sink(INFLUX_URL, influx_db, retention_policy="nope", create_database=False)
    with pytest.raises(StorageError) as info:
        sink.ensure_ready()
    sink.close()
    assert not info.value.retryable
    assert "'nope' does not exist" in info.value.detail


def test_ensure_ready_creates_database(influx: Influx) -> None:
    name = f"urban_test_{uuid.uuid4().hex[:10]}"
    sink = InfluxV1Sink(INFLUX_URL, name, create_database=True)
    try:
        sink.ensure_ready()
        sink.ensure_ready()  # idempotent
        sink.write(b"\n".join(_lines(5)), 5)
        assert _count(influx, name) == 5
    finally:
        sink.close()
        influx.drop(name)


def test_missing_database_is_not_retryable() -> None:
    sink = InfluxV1Sink(INFLUX_URL, f"urban_missing_{uuid.uuid4().hex[:8]}", create_database=False)
    with pytest.raises(StorageError) as info:
        sink.write(b"\n".join(_lines(3)), 3)
    sink.close()
    assert not info.value.retryable
    assert info.value.status == 404
    assert "database not found" in info.value.detail
    assert not isinstance(info.value, PartialWriteError)


def test_connection_refused_is_retryable(closed_port: int) -> None:
    sink = InfluxV1Sink(f"http://127.0.0.1:{closed_port}", "db", timeout=2)
    with pytest.raises(StorageError) as info:
        sink.write(b"\n".join(_lines(1)), 1)
    sink.close()
    assert info.value.retryable and info.value.status is None
    assert "ConnectionRefusedError" in info.value.detail


def test_secrets_never_shown(caplog: pytest.LogCaptureFixture, closed_port: int) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-pa55word"
    sink = InfluxV1Sink(f"http://127.0.0.1:{closed_port}", "db", username="writer", password=secret, timeout=1)
    with pytest.raises(StorageError) as info:
        sink.write(b"m v=1i 1", 1)
    sink.close()
    assert secret not in repr(sink)
    assert secret not in str(info.value)
    assert secret not in caplog.text
    with pytest.raises(StorageConfigError) as cfg_err:
        InfluxV1Sink(f"http://writer:{secret}@127.0.0.1:8086", "db")
    assert secret not in str(cfg_err.value)


def test_basic_auth_header_is_sent(fake_v2: object) -> None:
    from base64 import b64decode

    from tests.storage.conftest import FakeV2

    assert isinstance(fake_v2, FakeV2)
    sink = InfluxV1Sink(fake_v2.url, "city", username="writer", password="pw:with:colons", gzip=False,
                        retention_policy="autogen")
    fake_v2.responses.append((204, {}, {}))
    sink.write(b"m v=1i 1", 1)
    sink.close()
    req = fake_v2.requests[-1]
    assert req.path == "/write?db=city&precision=ms&rp=autogen"
    assert b64decode(req.headers["Authorization"].removeprefix("Basic ")) == b"writer:pw:with:colons"
    assert req.body == b"m v=1i 1"
