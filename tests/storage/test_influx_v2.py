"""InfluxDB v2 sink against a local HTTP endpoint that checks the request shape."""

from __future__ import annotations

import gzip
import logging
import urllib.parse

import pytest

from supervisor.storage import BatchWriter, InfluxV2Sink, PartialWriteError, StorageError
from tests.storage.conftest import FakeV2

TOKEN = "tok-0123456789abcdef-secret"
LINES = [b"traffic,device=a,zone=z flow=1.0 1", b'water,device=b alarms="LEAK" 2', b"m v=3i 3"]


def _sink(fake: FakeV2, **kw: object) -> InfluxV2Sink:
    return InfluxV2Sink(fake.url, org="city org", bucket="tele&metry", token=TOKEN, timeout=5, **kw)  # type: ignore[arg-type]


def test_request_shape(fake_v2: FakeV2) -> None:
    sink = _sink(fake_v2)
    sink.write(b"\n".join(LINES), len(LINES))
    sink.write(b"\n".join(LINES[:1]), 1)
    sink.close()
    assert len(fake_v2.requests) == 2
    req = fake_v2.requests[0]
    url = urllib.parse.urlsplit(req.path)
    assert req.method == "POST"
    assert url.path == "/api/v2/write"
    assert urllib.parse.parse_qs(url.query) == {"org": ["city org"], "bucket": ["tele&metry"], "precision": ["ms"]}
    assert req.headers["Authorization"] == f"Token {TOKEN}"
    assert req.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert req.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(req.body) == b"\n".join(LINES)


def test_plain_body_when_gzip_disabled(fake_v2: FakeV2) -> None:
    sink = _sink(fake_v2, gzip=False)
    sink.write(b"\n".join(LINES), 3)
    sink.close()
    req = fake_v2.requests[0]
    assert "Content-Encoding" not in req.headers
    assert req.body == b"\n".join(LINES)


@pytest.mark.parametrize("status", [503, 429, 500])
def test_server_errors_are_retryable_with_retry_after(fake_v2: FakeV2, status: int) -> None:
    fake_v2.responses.append((status, {"code": "unavailable", "message": "busy"}, {"Retry-After": "2"}))
    sink = _sink(fake_v2)
    with pytest.raises(StorageError) as info:
        sink.write(b"\n".join(LINES), 3)
    sink.close()
    err = info.value
    assert err.retryable and err.status == status and err.retry_after == 2.0
    assert "busy" in err.detail


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_are_not_retryable(fake_v2: FakeV2, status: int) -> None:
    fake_v2.responses.append((status, {"code": "unauthorized", "message": "unauthorized access"}, {}))
    sink = _sink(fake_v2)
    with pytest.raises(StorageError) as info:
        sink.write(b"\n".join(LINES), 3)
    sink.close()
    assert not info.value.retryable and info.value.status == status
    assert len(fake_v2.requests) == 1  # not split, not retried


def test_400_isolates_the_bad_line(fake_v2: FakeV2) -> None:
    fake_v2.reject_substring = b"BAD"
    good = [f"m,device=d{i} v={i}i {i}".encode() for i in range(40)]
    bad = b"m,device=BAD v=1i 99"
    batch = [*good[:13], bad, *good[13:]]
    sink = _sink(fake_v2)
    with pytest.raises(PartialWriteError) as info:
        sink.write(b"\n".join(batch), len(batch))
    sink.close()
    assert info.value.rejected == [bad] and info.value.written == 40
    assert "unable to parse" in info.value.detail
    stored = [ln for r in fake_v2.requests for ln in r.lines()]
    accepted = [ln for r in fake_v2.requests for ln in r.lines() if b"BAD" not in b"\n".join(r.lines())]
    assert sorted(accepted) == sorted(good)  # every good line was accepted exactly once
    assert bad in stored


def test_writer_retries_503_and_429_but_not_400(fake_v2: FakeV2) -> None:
    fake_v2.responses += [(503, {"message": "busy"}, {}), (429, {"message": "slow down"}, {})]
    dead: list[tuple[list[bytes], str]] = []
    writer = BatchWriter(_sink(fake_v2), batch_size=100, flush_interval=0.05, max_retries=5,
                         retry_min_delay=0.01, retry_max_delay=0.05,
                         on_dead_letter=lambda lines, why: dead.append((lines, why)))
    writer.start()
    durable: list[str] = []
    writer.submit(list(LINES), lambda: durable.append("first"))
    assert writer.flush(10)
    fake_v2.responses.append((400, {"message": "unable to parse 'nonsense'"}, {}))
    writer.submit([b"nonsense"], lambda: durable.append("second"))
    assert writer.flush(10)
    assert writer.stop(10)
    s = writer.stats()
    assert s.retries == 2 and s.failures == 2
    assert s.points_written == 3 and s.dead_letters == 1
    assert dead == [([b"nonsense"], dead[0][1])] and "unable to parse" in dead[0][1]
    assert durable == ["first", "second"]
    writes = [r for r in fake_v2.requests if r.path.startswith("/api/v2/write")]
    assert len(writes) == 4  # 503, 429, 204, 400 (single line: no split, no retry)


def test_ensure_ready_creates_missing_bucket(fake_v2: FakeV2) -> None:
    sink = _sink(fake_v2)
    sink.ensure_ready()
    assert fake_v2.buckets == ["tele&metry"]
    sink.ensure_ready()  # now found: no second creation
    sink.close()
    assert fake_v2.buckets == ["tele&metry"]
    create = [r for r in fake_v2.requests if r.method == "POST" and r.path == "/api/v2/buckets"]
    assert len(create) == 1 and b'"orgID": "0123456789abcdef"' in create[0].body


def test_token_never_shown(fake_v2: FakeV2, caplog: pytest.LogCaptureFixture, closed_port: int) -> None:
    caplog.set_level(logging.DEBUG)
    sink = InfluxV2Sink(f"http://127.0.0.1:{closed_port}", org="o", bucket="b", token=TOKEN, timeout=1)
    with pytest.raises(StorageError) as info:
        sink.write(b"m v=1i 1", 1)
    sink.close()
    assert TOKEN not in repr(sink) and TOKEN not in str(info.value) and TOKEN not in caplog.text
