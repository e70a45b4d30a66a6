"""The registry of rule kinds, fed by the ``urban_supervisor.rule_kinds`` entry-point group.

Our own kinds are declared in ``pyproject.toml`` exactly like a third party's, so there is one way
in; :func:`register_kind` exists for tests and embedding applications. A kind is a
:class:`RuleKind`: its spec (a pydantic model), its runtime and what its selector fields may select.
The loader and the engine only read these; they know no kind by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from ._spec import RuleBase, Selector

if TYPE_CHECKING:
    from ._devices import DeviceTable
    from ._runtime import Context, RuleRuntime

GROUP = "urban_supervisor.rule_kinds"
_log = logging.getLogger(__name__)
_extra: dict[str, RuleKind] = {}
_cache: dict[str, RuleKind] | None = None


@dataclass(frozen=True, slots=True)
class SelectorField:
    """A field of a spec holding a selector, and what the devices it selects must be."""

    name: str  # a field of the spec, or a dotted path into nested models ("when.devices")
    families: frozenset[str] | None = None  # allowed device families (None: any)
    device_kind: str | None = None  # required device kind (None: any)
    #: "input": the rule reacts to what these devices send; "actuator": the rule commands them
    role: Literal["input", "actuator"] = "input"

    def get(self, spec: RuleBase) -> Selector | None:
        """The selector at :attr:`name` in ``spec``; None when an optional part is absent."""
        node: object = spec
        for part in self.name.split("."):
            node = getattr(node, part, None)
            if node is None:
                return None
        if not isinstance(node, Selector):
            raise TypeError(f"{type(spec).__name__}.{self.name} is not a Selector")
        return node


#: kind-specific checks against the city: (spec, devices) -> [(field path, message)]
CityCheck = Callable[[Any, "DeviceTable"], list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class RuleKind:
    """One rule kind: everything the loader and the engine need to know about it."""

    name: str
    spec: type[RuleBase]
    runtime: Callable[[Any, Context], RuleRuntime]
    selectors: tuple[SelectorField, ...]
    #: fields naming another rule, and the kind that rule must be
    references: Mapping[str, str] = field(default_factory=dict)
    city_check: CityCheck | None = None
    #: whether a rule of this kind commands actuators: a bool, or a function of the spec (a kind
    #: that may command or only alarm). The inputs of commanding rules, and the actuators they
    #: command (for the confirmations), go through the ingest control lane; alarm-only rules do not.
    commands: bool | Callable[[Any], bool] = False

    def commands_for(self, spec: RuleBase) -> bool:
        """Whether the rule ``spec`` (of this kind) commands actuators."""
        return self.commands(spec) if callable(self.commands) else bool(self.commands)

    def inputs(self) -> tuple[SelectorField, ...]:
        """The selector fields naming what the rule reacts to (not what it commands)."""
        return tuple(s for s in self.selectors if s.role == "input")

    def __post_init__(self) -> None:
        declared = self.spec.model_fields["kind"].annotation
        if getattr(declared, "__args__", None) != (self.name,):
            raise TypeError(f"rule kind {self.name!r}: its spec must declare kind: Literal[{self.name!r}]")
        missing = [s.name for s in self.selectors if s.name.split(".")[0] not in self.spec.model_fields]
        if missing:
            raise TypeError(f"rule kind {self.name!r}: selector fields {missing} are not fields of its spec")


def register_kind(kind: RuleKind) -> RuleKind:
    """Add (or replace) a kind, for tests and embedding applications; return it."""
    global _cache
    _extra[kind.name] = kind
    _cache = None
    return kind


def refresh_kinds() -> None:
    """Read the entry points again at the next use (a package was installed at run time)."""
    global _cache
    _cache = None


def unregister_kind(name: str) -> None:
    """Remove a kind added by :func:`register_kind` (tests)."""
    global _cache
    _extra.pop(name, None)
    _cache = None


def _load_entry_points() -> dict[str, RuleKind]:
    found: dict[str, RuleKind] = {}
    for ep in entry_points(group=GROUP):
        try:
            kind = ep.load()
        except Exception as exc:  # a third-party package must not take the supervisor down
            _log.error("rule kind entry point %s (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        if not isinstance(kind, RuleKind):
            _log.error("rule kind entry point %s (%s) is not a rules.RuleKind", ep.name, ep.value)
            continue
        if kind.name != ep.name:
            _log.error("rule kind entry point %s names kind %r; skipped", ep.name, kind.name)
            continue
        found[ep.name] = kind
    return found


def rule_kinds() -> dict[str, RuleKind]:
    """Every installed kind by name, sorted (entry points, overridden by registered kinds)."""
    global _cache
    if _cache is None:
        found = _load_entry_points()
        found.update(_extra)
        _cache = dict(sorted(found.items()))
    return _cache


def get_kind(name: str) -> RuleKind | None:
    return rule_kinds().get(name)
