"""``DeviceMap.table()``: the devices as columns, the same facts as the per-device records."""

from __future__ import annotations

from simulators.city import generate_city
from supervisor.model import city_from_dict


def test_the_table_says_what_every_device_record_says() -> None:
    model = city_from_dict(generate_city(devices=300, seed=3))
    t = model.devices.table()
    assert t["id"] == list(model.devices)
    for i, dev_id in enumerate(t["id"]):
        d = model.devices[dev_id]
        row = {k: t[k][i] for k in t}
        assert row == {"id": d.id, "family": d.family, "kind": d.kind, "service": d.service, "zone": d.zone,
                       "lon": d.lon, "lat": d.lat, "street": d.street, "cabinet": d.cabinet}
    assert any(c is not None for c in t["cabinet"]) and any(s is not None for s in t["street"])
