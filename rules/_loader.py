"""Loading and validating a directory of rule files."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from ._errors import RuleFileError, RuleIssue
from ._spec import KINDS, SELECTOR_FIELDS, RuleSpec, Selector
from ._types import Topology

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000

# what each selector field may select: allowed device families
_ALLOWED_FAMILIES: dict[tuple[str, str], frozenset[str]] = {
    ("schedule", "lights"): frozenset({"lighting"}),
    ("adaptive_lighting", "sensors"): frozenset({"traffic"}),
    ("alarm_lighting", "cameras"): frozenset({"cctv"}),
    ("water_leak", "meters"): frozenset({"water"}),
    ("lamp_faults", "cabinets"): frozenset({"lighting"}),
}
_REQUIRED_KIND: dict[tuple[str, str], str] = {("lamp_faults", "cabinets"): "lighting_cabinet"}


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """The device fields the rules read, copied once from the topology (cheap to look up)."""

    id: str
    family: str
    kind: str
    zone: str
    lon: float
    lat: float
    street: str | None
    cabinet: str | None
    interval: float | None


class DeviceTable(Mapping[str, DeviceRow]):
    """A snapshot of the topology's devices, built once per load (the model builds objects lazily)."""

    def __init__(self, topology: Topology) -> None:
        self._rows = {
            d.id: DeviceRow(d.id, d.family, d.kind, d.zone, d.lon, d.lat, d.street, d.cabinet, d.interval)
            for d in topology.devices.values()
        }
        self.zones = frozenset(r.zone for r in self._rows.values())

    def __getitem__(self, key: str) -> DeviceRow:
        return self._rows[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Validated rules, in file then list order, with the file each came from."""

    rules: tuple[RuleSpec, ...]
    sources: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[RuleSpec]:
        return iter(self.rules)

    def get(self, rule_id: str) -> RuleSpec | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None


def _loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _read_yaml(path: Path, issues: list[RuleIssue]) -> list[Any] | None:
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            issues.append(RuleIssue(name, None, "", f"file too large ({size} bytes > {MAX_FILE_BYTES})"))
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(RuleIssue(name, None, "", f"cannot read: {exc}"))
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        issues.append(RuleIssue(name, None, where, f"invalid YAML: {getattr(exc, 'problem', exc)}"))
        return None
    if data is None:
        return []
    if not isinstance(data, dict):
        issues.append(RuleIssue(name, None, "", f"top level must be a mapping with 'rules', got {type(data).__name__}"))
        return None
    extra = sorted(set(data) - {"rules", "version"})
    if extra:
        issues.append(RuleIssue(name, None, extra[0], "unknown top-level key (expected 'rules', 'version')"))
    if data.get("version", 1) != 1:
        issues.append(RuleIssue(name, None, "version", f"unsupported version {data.get('version')!r} (expected 1)"))
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        issues.append(RuleIssue(name, None, "rules", f"must be a list, got {type(rules).__name__}"))
        return None
    return rules


def _parse_rule(file: str, index: int, raw: Any, issues: list[RuleIssue]) -> RuleSpec | None:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        issues.append(RuleIssue(file, None, where, f"a rule must be a mapping, got {type(raw).__name__}"))
        return None
    rid = raw.get("id")
    rule_id = rid if isinstance(rid, str) else None
    kind = raw.get("kind")
    if kind is None:
        issues.append(RuleIssue(file, rule_id, f"{where}.kind", "missing; one of " + ", ".join(KINDS)))
        return None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        issues.append(
            RuleIssue(file, rule_id, f"{where}.kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        )
        return None
    try:
        return cast(RuleSpec, model.model_validate(raw))
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            issues.append(RuleIssue(file, rule_id, _loc(where, tuple(err["loc"])), msg))
        return None


def resolve(selector: Selector, devices: Mapping[str, DeviceRow]) -> list[str]:
    """Device ids matched by ``selector``, sorted. Explicit ids not in the city are skipped."""
    zones = set(selector.zones) if selector.zones is not None else None
    if selector.devices is not None:
        candidates = [devices[d] for d in selector.devices if d in devices]
    else:
        candidates = list(devices.values())
    out = [
        d.id
        for d in candidates
        if (selector.family is None or d.family == selector.family)
        and (selector.kind is None or d.kind == selector.kind)
        and (zones is None or d.zone in zones)
    ]
    return sorted(out)


def check_references(rule: RuleSpec, devices: DeviceTable, file: str) -> list[RuleIssue]:
    """Problems of ``rule`` against the topology: selectors that resolve to nothing or to wrong devices."""
    issues: list[RuleIssue] = []
    for fname in SELECTOR_FIELDS[rule.kind]:
        sel: Selector = getattr(rule, fname)
        if sel.devices is not None:
            for i, d in enumerate(sel.devices):
                if d not in devices:
                    issues.append(RuleIssue(file, rule.id, f"{fname}.devices[{i}]", f"unknown device {d!r}"))
        if sel.zones is not None:
            for i, z in enumerate(sel.zones):
                if z not in devices.zones:
                    issues.append(RuleIssue(file, rule.id, f"{fname}.zones[{i}]", f"unknown zone {z!r}"))
        ids = resolve(sel, devices)
        if not ids:
            issues.append(RuleIssue(file, rule.id, fname, "selector matches no device of the city"))
            continue
        allowed = _ALLOWED_FAMILIES.get((rule.kind, fname))
        if allowed is not None:
            wrong = [d for d in ids if devices[d].family not in allowed]
            if wrong:
                fam = devices[wrong[0]].family
                issues.append(
                    RuleIssue(
                        file, rule.id, fname,
                        f"selects {len(wrong)} device(s) of family {fam!r} (e.g. {wrong[0]}); "
                        f"expected family {'/'.join(sorted(allowed))}",
                    )
                )
        need_kind = _REQUIRED_KIND.get((rule.kind, fname))
        if need_kind is not None:
            wrong = [d for d in ids if devices[d].kind != need_kind]
            if wrong:
                issues.append(
                    RuleIssue(file, rule.id, fname, f"selects {len(wrong)} device(s) that are not {need_kind} "
                              f"(e.g. {wrong[0]})")
                )
        if rule.kind == "adaptive_lighting" and not any(devices[d].street for d in ids):
            issues.append(RuleIssue(file, rule.id, fname, "no selected road sensor is on a street"))
    return issues


def validate_rules(rules: list[tuple[str, RuleSpec]], devices: DeviceTable | None) -> list[RuleIssue]:
    """Cross-rule checks (duplicates, references between rules) and, with a topology, selectors."""
    issues: list[RuleIssue] = []
    seen: dict[str, str] = {}
    for file, r in rules:
        if r.id in seen:
            issues.append(RuleIssue(file, r.id, "id", f"duplicate rule id (first defined in {seen[r.id]})"))
        else:
            seen[r.id] = file
    kinds = {r.id: r.kind for _, r in rules}
    for file, r in rules:
        ref = getattr(r, "schedule", None) if r.kind in ("adaptive_lighting", "alarm_lighting") else None
        if isinstance(ref, str):
            if ref not in kinds:
                issues.append(RuleIssue(file, r.id, "schedule", f"refers to unknown rule {ref!r}"))
            elif kinds[ref] != "schedule":
                issues.append(RuleIssue(file, r.id, "schedule", f"rule {ref!r} is a {kinds[ref]}, not a schedule"))
        if devices is not None:
            issues.extend(check_references(r, devices, file))
    return issues


def load_rules(directory: str | Path, topology: Topology | None = None) -> RuleSet:
    """Load every ``*.yaml``/``*.yml`` file of ``directory`` (not recursive), sorted by name.

    Raise :class:`RuleFileError` listing every problem; with a ``topology``, selectors must resolve.
    """
    return load_dir(directory, None if topology is None else DeviceTable(topology))


def load_dir(directory: str | Path, devices: DeviceTable | None) -> RuleSet:
    """:func:`load_rules` against an already built device table."""
    d = Path(directory)
    if not d.is_dir():
        raise RuleFileError([RuleIssue(str(d), None, "", "not a directory")])
    files = sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if len(files) > MAX_FILES:
        raise RuleFileError([RuleIssue(str(d), None, "", f"too many rule files ({len(files)} > {MAX_FILES})")])
    issues: list[RuleIssue] = []
    parsed: list[tuple[str, RuleSpec]] = []
    for path in files:
        raw_rules = _read_yaml(path, issues)
        if raw_rules is None:
            continue
        for i, raw in enumerate(raw_rules):
            spec = _parse_rule(str(path), i, raw, issues)
            if spec is not None:
                parsed.append((str(path), spec))
    issues.extend(validate_rules(parsed, devices))
    if issues:
        raise RuleFileError(issues)
    log.debug("loaded %d rules from %d files in %s", len(parsed), len(files), d)
    return RuleSet(tuple(r for _, r in parsed), {r.id: f for f, r in parsed})
