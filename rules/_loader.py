"""Loading and validating a directory of rule files."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ._devices import DeviceRow, DeviceTable, resolve
from ._errors import RuleFileError, RuleIssue
from ._registry import RuleKind, SelectorField, get_kind, rule_kinds
from ._spec import RuleBase, Selector, Where
from ._types import Topology

__all__ = ["DeviceRow", "DeviceTable", "RuleSet", "RuleSpec", "load_dir", "load_rules", "resolve", "validate_rules"]

#: a validated rule of any kind
RuleSpec = RuleBase

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 1000

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
    names = ", ".join(rule_kinds()) or "none: no rule kind is installed (reinstall the package, `make install`)"
    if kind is None:
        issues.append(RuleIssue(file, rule_id, f"{where}.kind", "missing; one of " + names))
        return None
    plugin = get_kind(kind) if isinstance(kind, str) else None
    if plugin is None:
        issues.append(RuleIssue(file, rule_id, f"{where}.kind", f"unknown kind {kind!r}; expected one of {names}"))
        return None
    try:
        return plugin.spec.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            issues.append(RuleIssue(file, rule_id, _loc(where, tuple(err["loc"])), msg))
        return None


def _selector_issues(sel: Selector, fname: str, devices: DeviceTable) -> list[tuple[str, str]]:
    """Names in ``sel`` that the city does not have."""
    out: list[tuple[str, str]] = []
    lists: list[tuple[str, tuple[str, ...] | None, Mapping[str, object] | frozenset[str], str]] = [
        ("devices", sel.devices, devices, "device"), ("zones", sel.zones, devices.zones, "zone"),
    ]
    if isinstance(sel, Where):
        lists += [("streets", sel.streets, devices.streets, "street"), ("cabinets", sel.cabinets, devices, "element")]
        if sel.near is not None and sel.near.element is not None:
            lists.append(("near.element", (sel.near.element,), devices, "element"))
    for key, names, known, what in lists:
        for i, name in enumerate(names or ()):
            if name not in known:
                path = f"{fname}.{key}" if key == "near.element" else f"{fname}.{key}[{i}]"
                out.append((path, f"unknown {what} {name!r}"))
    if sel.kind is not None and sel.kind not in devices.kinds:
        out.append((f"{fname}.kind", f"no device of kind {sel.kind!r} in the city"))
    return out


def _wrong_devices(field: SelectorField, ids: list[str], devices: DeviceTable) -> list[str]:
    """What is wrong with the devices a selector field selects, for its kind."""
    out: list[str] = []
    if field.families is not None:
        wrong = [d for d in ids if devices[d].family not in field.families]
        if wrong:
            fam = devices[wrong[0]].family
            out.append(f"selects {len(wrong)} device(s) of family {fam!r} (e.g. {wrong[0]}); "
                       f"expected family {'/'.join(sorted(field.families))}")
    if field.device_kind is not None:
        wrong = [d for d in ids if devices[d].kind != field.device_kind]
        if wrong:
            out.append(f"selects {len(wrong)} device(s) that are not {field.device_kind} (e.g. {wrong[0]})")
    return out


def check_references(rule: RuleSpec, devices: DeviceTable, file: str) -> list[RuleIssue]:
    """Problems of ``rule`` against the topology: selectors that resolve to nothing or to wrong devices."""
    plugin = _kind_of(rule)
    issues: list[RuleIssue] = []
    for field in plugin.selectors:
        sel = field.get(rule)
        if sel is None:
            continue
        issues.extend(RuleIssue(file, rule.id, p, m) for p, m in _selector_issues(sel, field.name, devices))
        ids = resolve(sel, devices)
        if not ids:
            issues.append(RuleIssue(file, rule.id, field.name, "selector matches no device of the city"))
            continue
        issues.extend(RuleIssue(file, rule.id, field.name, m) for m in _wrong_devices(field, ids, devices))
    if plugin.city_check is not None and not issues:
        issues.extend(RuleIssue(file, rule.id, p, m) for p, m in plugin.city_check(rule, devices))
    return issues


def _kind_of(rule: RuleSpec) -> RuleKind:
    plugin = get_kind(rule.kind)
    if plugin is None:  # a spec built in code for a kind since unregistered
        raise RuleFileError([RuleIssue("?", rule.id, "kind", f"rule kind {rule.kind!r} is not installed")])
    return plugin


def validate_rules(rules: list[tuple[str, RuleSpec]], devices: DeviceTable | None) -> list[RuleIssue]:
    """Cross-rule checks (duplicates, references between rules) and, with a topology, selectors."""
    issues: list[RuleIssue] = []
    seen: dict[str, str] = {}
    for file, r in rules:
        if r.id in seen:
            issues.append(RuleIssue(file, r.id, "id", f"duplicate rule id (first defined in {seen[r.id]})"))
        else:
            seen[r.id] = file
    kinds_by_id = {r.id: r.kind for _, r in rules}
    for file, r in rules:
        for fname, want in _kind_of(r).references.items():
            ref = getattr(r, fname, None)
            if not isinstance(ref, str):
                continue
            if ref not in kinds_by_id:
                issues.append(RuleIssue(file, r.id, fname, f"refers to unknown rule {ref!r}"))
            elif kinds_by_id[ref] != want:
                issues.append(RuleIssue(file, r.id, fname, f"rule {ref!r} is a {kinds_by_id[ref]}, not a {want}"))
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
