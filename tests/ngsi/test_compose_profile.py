"""The Orion-LD broker of push mode is in the compose project, only under the ``ngsi`` profile."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_broker_services_are_included_under_the_ngsi_profile() -> None:
    main = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "deploy/ngsi/compose.yaml" in main["include"]
    part = yaml.safe_load((ROOT / "deploy/ngsi/compose.yaml").read_text())
    services = part["services"]
    assert set(services) == {"orion-ld", "mongo-ngsi"}
    for name, svc in services.items():
        assert svc["profiles"] == ["ngsi"], name
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert "ports" not in svc, f"{name}: the broker stays on the compose network"
        for source in (v.split(":")[0] for v in svc.get("volumes", [])):
            assert source in part["volumes"], f"{name}: volume {source} is not declared"
    orion = services["orion-ld"]
    assert orion["depends_on"] == {"mongo-ngsi": {"condition": "service_healthy"}}
    assert orion["command"][orion["command"].index("-dbhost") + 1] == "mongo-ngsi"
    assert orion["expose"] == ["1026"]
    assert orion["healthcheck"]["test"][-1] == "http://127.0.0.1:1026/version"  # the broker answers HTTP
