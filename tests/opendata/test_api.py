"""``GET /open/``: the catalogue and its files without a token, rate-limited, no traversal, 404 when off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from supervisor.api import create_app
from supervisor.config import ApiConfig, load_settings
from supervisor.opendata import published_file
from supervisor.runtime import Supervisor
from tests.support.services import free_port

VIEWER = "viewer-token-0123456789abcdef"


def client(tmp_path: Path, out: Path, **opendata: Any) -> TestClient:
    settings = load_settings(
        None, mode="test", data_dir=str(tmp_path / "var"),
        storage={"backend": "sqlite", "sqlite_path": str(tmp_path / "t.sqlite3"), "spool_dir": str(tmp_path / "spool")},
        mqtt={"port": free_port()}, opendata={"out_dir": str(out), **opendata})
    app = create_app(Supervisor(settings), ApiConfig(viewer_tokens=[VIEWER]))  # type: ignore[list-item]
    return TestClient(app)


def test_the_catalogue_and_every_file_it_lists_are_served_without_a_token(exported: Path, tmp_path: Path) -> None:
    c = client(tmp_path, exported, publish=True, burst=1000)
    assert c.get("/api/v1/summary").status_code == 401, "the rest of the API still needs a token"
    r = c.get("/open/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    cat = r.json()
    assert cat["@type"] == "dcat:Catalog"
    served = 0
    for d in cat["dcat:dataset"]:
        for dist in d["dcat:distribution"]:
            name = dist["dcat:downloadURL"]["@id"]
            got = c.get(f"/open/{name}")
            assert got.status_code == 200, name
            assert got.content == (exported / name).read_bytes()
            assert got.headers["content-type"].split(";")[0] == dist["dct:format"]
            served += 1
    assert served >= 12


@pytest.mark.parametrize("path", [
    "/open/..%2F..%2Fetc%2Fpasswd", "/open/%2e%2e%2fcity.json", "/open/..", "/open/%2e%2e",
    "/open/.opendata-state.json", "/open/.opendata.lock", "/open/%2Fetc%2Fpasswd", "/open/..%5C..%5Ccity.json",
    "/open/lamps.geojson%00.csv", "/open/does-not-exist.csv",
])
def test_no_directory_traversal(exported: Path, tmp_path: Path, path: str) -> None:
    (exported.parent / "secret.txt").write_text("not public")
    c = client(tmp_path, exported, publish=True, burst=1000)
    # percent-encoded dots and slashes reach the server as sent (httpx folds a literal "/.." itself:
    # the names below are also checked one level down, where no client rewrites them)
    r = c.send(c.build_request("GET", httpx.URL("http://testserver" + path)))
    assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert b"not public" not in r.content and b"periods" not in r.content


def test_switched_off_it_answers_404(exported: Path, tmp_path: Path) -> None:
    c = client(tmp_path, exported, publish=False)
    assert c.get("/open/").status_code == 404
    assert c.get("/open/lamps.geojson").status_code == 404
    assert client(tmp_path, tmp_path / "empty", publish=True).get("/open/").status_code == 404, "nothing exported yet"


def test_requests_are_rate_limited_per_address(exported: Path, tmp_path: Path) -> None:
    c = client(tmp_path, exported, publish=True, burst=5, rate_per_second=0.5)
    codes = [c.get("/open/").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    r = c.get("/open/lamps.geojson")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "too many open-data requests" in json.loads(r.content)["detail"]


@pytest.mark.parametrize("name", ["..", "../city.json", "../secret.txt", "/etc/passwd", ".", "",
                                  ".opendata-state.json", ".opendata.lock", "out/lamps.geojson"])
def test_names_that_are_not_in_the_catalogue_reach_nothing(exported: Path, name: str) -> None:
    (exported.parent / "secret.txt").write_text("not public")
    found = published_file(exported, name)
    assert found is None or found[0] == exported / "catalog.jsonld", name
