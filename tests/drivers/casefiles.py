"""Case files of registered drivers: discovery, validation and execution.

A case file (YAML or JSON) lives in ``<driver package>/cases/`` and holds either

- a decode case: ``topic``, ``payload`` (string; or ``payload_hex``) and either ``expect`` (the
  records ``urban-supervisor decode`` prints: observations, and events with ``"event": kind``)
  or ``error`` (the DecodeError reason); or
- an encode case: ``command`` (Command fields) and either ``publish`` (list of ``topic``,
  ``payload``, ``qos``, ``retain``) or ``error: encode_error``.

Optional keys: ``description``, ``options`` (driver options).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from drivers import Command, DecodeError, Driver, EncodeError, available
from drivers.kit import records

SUFFIXES = (".yaml", ".yml", ".json")
_DECODE_KEYS = {"topic", "payload", "payload_hex", "expect", "error", "description", "options"}
_ENCODE_KEYS = {"command", "publish", "error", "description", "options"}


@dataclass(frozen=True)
class Case:
    driver: str
    path: Path
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.driver}/{self.path.name}"

    @property
    def is_encode(self) -> bool:
        return "command" in self.data


def case_dir(cls: type[Driver]) -> Path:
    return Path(inspect.getfile(cls)).parent / "cases"


def load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a case is a mapping")
    keys = set(data)
    if "command" in data:
        if keys - _ENCODE_KEYS or len(keys & {"publish", "error"}) != 1:
            raise ValueError(f"{path}: an encode case has command and exactly one of publish/error; "
                             f"unexpected keys: {sorted(keys - _ENCODE_KEYS)}")
        if "error" in data and data["error"] != "encode_error":
            raise ValueError(f"{path}: an encode case's error is 'encode_error'")
    else:
        if keys - _DECODE_KEYS or "topic" not in data or len(keys & {"payload", "payload_hex"}) != 1 \
                or len(keys & {"expect", "error"}) != 1:
            raise ValueError(f"{path}: a decode case has topic, payload (or payload_hex) and exactly one of "
                             f"expect/error; unexpected keys: {sorted(keys - _DECODE_KEYS)}")
        if "expect" in data and not isinstance(data["expect"], list):
            raise ValueError(f"{path}: expect is a list of records")
    return data


def cases_of(name: str, cls: type[Driver]) -> list[Case]:
    folder = case_dir(cls)
    if not folder.is_dir():
        return []
    return [Case(name, p, load(p)) for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES]


def all_cases() -> list[Case]:
    return [c for name, cls in available().items() for c in cases_of(name, cls)]


def payload_of(case: Case) -> bytes:
    if "payload_hex" in case.data:
        return bytes.fromhex(case.data["payload_hex"])
    payload = case.data["payload"]
    if not isinstance(payload, str):
        raise ValueError(f"{case.path}: payload must be a string (the bytes on the wire)")
    return payload.encode("utf-8")


def canonical(records_: list[dict[str, Any]]) -> list[str]:
    """Order-insensitive, type-strict form (1 != 1.0 != true)."""
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in records_)


def decode_outcome(driver: Driver, case: Case) -> tuple[str, Any]:
    """``("ok", canonical records)`` or ``("error", reason)``."""
    try:
        decoded = driver.decode(case.data["topic"], payload_of(case))
    except DecodeError as exc:
        return "error", exc.reason
    return "ok", canonical(records(driver, decoded))


def run(case: Case) -> None:
    cls = available()[case.driver]
    driver = cls(case.data.get("options"))
    if case.is_encode:
        command = Command(**case.data["command"])
        if "error" in case.data:
            try:
                got = driver.encode(command)
            except EncodeError:
                return
            raise AssertionError(f"{case.id}: expected EncodeError, got {got!r}")
        publishes = driver.encode(command)
        got_p = [{"topic": p.topic, "payload": _wire(p.payload), "qos": p.qos, "retain": p.retain}
                 for p in publishes]
        want_p = [{**p, "payload": _wire(p["payload"])} for p in case.data["publish"]]
        _same(case, "publishes", canonical(got_p), canonical(want_p))
        return
    kind, got = decode_outcome(driver, case)
    if "error" in case.data:
        if (kind, got) != ("error", case.data["error"]):
            raise AssertionError(f"{case.id}: expected error {case.data['error']!r}, got {kind} {got!r}")
    else:
        if kind != "ok":
            raise AssertionError(f"{case.id}: refused with {got!r}")
        _same(case, "records", got, canonical(case.data["expect"]))


def _wire(payload: bytes | str) -> Any:
    """A publish payload for comparison: parsed when JSON, else its text (Tasmota ``ON``, Frigate ``OFF``)."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {"text": payload.decode() if isinstance(payload, bytes) else payload}


def _same(case: Case, what: str, got: list[str], want: list[str]) -> None:
    if got != want:
        missing = "\n  ".join(w for w in want if w not in got) or "-"
        extra = "\n  ".join(g for g in got if g not in want) or "-"
        raise AssertionError(f"{case.id}: {what} differ\nexpected but not produced:\n  {missing}"
                             f"\nproduced but not expected:\n  {extra}")
