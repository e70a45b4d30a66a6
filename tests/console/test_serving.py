"""How the console is served: the files, their headers (CSP), the vendored libraries and the config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from supervisor.api import create_app
from supervisor.config import ApiConfig, ConsoleConfig, Insecure, insecurities, load_settings
from supervisor.console import STATIC
from supervisor.runtime import Supervisor
from tests.api.conftest import make_supervisor

PKG = STATIC.parent


@pytest.fixture
def sup(tmp_path: Path) -> Supervisor:
    return make_supervisor(tmp_path)


def _client(sup: Supervisor, **console: object) -> TestClient:
    return TestClient(create_app(sup, ApiConfig(console=ConsoleConfig(**console))))  # type: ignore[arg-type]


def test_every_console_answer_has_the_strict_csp_and_the_common_headers(sup: Supervisor) -> None:
    c = _client(sup)
    for path in ("/console/", "/console/console.js", "/console/console.css", "/console/config.json",
                 "/console/vendor/leaflet/leaflet.js", "/console/no-such-file"):
        r = c.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert "connect-src 'self';" in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert c.get("/console/").status_code == 200
    assert c.get("/console", follow_redirects=False).headers["location"] == "/console/"
    # the API keeps its own CSP
    assert c.get("/health").headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_page_has_no_inline_script_or_style_and_loads_nothing_from_elsewhere() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert "<style" not in html and " style=" not in html, "an inline style"
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"(https?:)?//", url), f"{url}: the console loads only from its own origin"
    js = (STATIC / "console.js").read_text()
    assert "style=" not in js and "eval(" not in js and "new Function" not in js
    assert "localStorage" not in js, "the token lives in sessionStorage only"
    assert not re.search(r"[?&](token|access_token)=", js), "a token never goes in a URL"
    # were the script not to run, submitting the form would send nothing: no input has a name, the
    # form posts (a GET would put its fields in the URL), and the CSP's form-action 'none' blocks it
    login = re.search(r"<form[^>]*id=\"login-form\"[^>]*>(.*?)</form>", html, re.S)
    assert login is not None and 'method="post"' in login.group(0)
    assert "<input" in login.group(1) and not re.search(r"<input[^>]*\bname=", login.group(1))


def test_the_tile_server_joins_the_csp_and_the_page_config(sup: Supervisor) -> None:
    c = _client(sup, tile_url="https://tiles.example.org/{z}/{x}/{y}.png", tile_attribution="© Example")
    csp = c.get("/console/").headers["content-security-policy"]
    assert "img-src 'self' data: https://tiles.example.org;" in csp
    assert "connect-src 'self' https://tiles.example.org;" in csp
    cfg = c.get("/console/config.json").json()
    assert cfg == {"tile_url": "https://tiles.example.org/{z}/{x}/{y}.png", "tile_attribution": "© Example",
                   "api": "/api/v1"}
    assert _client(sup).get("/console/config.json").json()["tile_url"] is None


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "https://t.example.org/tile.png",
                                 "https://t.example.org/{z}/{x}/{y}.png'; script-src *", "ftp://t/{z}/{x}/{y}"])
def test_a_bad_tile_url_is_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(ValidationError, match=r"console\.tile_url"):
        ConsoleConfig(tile_url=bad)


def test_production_refuses_plain_http_tiles_beyond_loopback() -> None:
    s = load_settings(None, mode="test", api={"console": {"tile_url": "http://tiles.example.org/{z}/{x}/{y}.png"}})
    found = [f for f in insecurities(s) if f.name == Insecure.PLAINTEXT_HTTP]
    assert [f.key for f in found] == ["api.console.tile_url"]


def test_a_disabled_console_is_not_served(sup: Supervisor) -> None:
    c = _client(sup, enabled=False)
    assert c.get("/console/").status_code == 404


def test_the_vendored_libraries_ship_with_their_licences_and_match_the_lock_file() -> None:
    vendor = STATIC / "vendor"
    for f in ("leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/LICENSE", "supercluster/supercluster.min.js",
              "supercluster/LICENSE", "supercluster/LICENSE.kdbush"):
        assert (vendor / f).stat().st_size > 0, f
    lock = json.loads((PKG / "package-lock.json").read_text())["packages"]
    for line in (vendor / "VERSIONS").read_text().splitlines():
        name, version, _licence = line.split()
        assert lock[f"node_modules/{name}"]["version"] == version, f"{name}: run make console-assets"


def test_the_package_data_includes_the_console() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["supervisor.console"]
    shipped = {p.relative_to(PKG) for pat in patterns for p in PKG.glob(pat) if p.is_file()}
    every = {p.relative_to(PKG) for p in STATIC.rglob("*") if p.is_file()}
    assert every <= shipped, sorted(str(p) for p in every - shipped)
