"""A test city whose switches answer SNMP: snmpsim agents generated from the city, on a free UDP port."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulators.city import generate_city
from simulators.snmp import AgentSpec, SnmpSim, agents_for_city, free_udp_port


@dataclass
class Lab:
    city: dict[str, Any]
    agents: dict[str, AgentSpec]
    sim: SnmpSim
    data: Path

    def push(self, switch: str) -> None:
        """Rewrite ``switch``'s walk file: snmpsim serves the new values from its next request."""
        self.agents[switch].write(self.data)

    def credentials(self) -> dict[str, Any]:
        """One v2c credential per switch: the community selects its agent in snmpsim."""
        return {sw: {"version": "2c", "community": sw} for sw in self.agents}


def lab_city(port: int, devices: int = 60, seed: int = 3) -> dict[str, Any]:
    city = copy.deepcopy(generate_city(seed=seed, devices=devices))
    for sw in city["switches"]:
        sw["mgmt"] = {"host": "127.0.0.1", "port": port, "credentials": sw["id"]}
    return city


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    port = free_udp_port()
    city = lab_city(port)
    data = tmp_path / "snmprec"
    data.mkdir()
    agents = agents_for_city(city)
    for a in agents.values():
        a.write(data)
    with SnmpSim(data, port) as sim:
        sim.wait(next(iter(agents)), timeout=60)
        yield Lab(city, agents, sim, data)
