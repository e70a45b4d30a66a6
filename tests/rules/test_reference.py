"""``rules/README.md`` is the reference of every kind: its examples are the example rule set's, and valid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from rules import rule_kinds
from supervisor.cli import main
from tests.rules._city import city_data, with_air_stations

RULES = Path(__file__).resolve().parents[2] / "rules"
README = (RULES / "README.md").read_text(encoding="utf-8")
EXAMPLE_DIRS = (RULES / "examples", RULES / "examples" / "more")


def _examples() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in EXAMPLE_DIRS:
        for path in sorted(d.glob("*.yaml")):
            for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
                assert rule["id"] not in out, f"example id {rule['id']} twice"
                out[rule["id"]] = rule
    return out


def _readme_rules() -> list[dict[str, Any]]:
    """Every rule of the README's YAML blocks that are rule list items (not the file template)."""
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    rules: list[dict[str, Any]] = []
    for b in blocks:
        if b.lstrip().startswith("- id:"):
            rules.extend(yaml.safe_load(b))
    return rules


def _sections() -> dict[str, str]:
    """Kind name -> its section of the README."""
    parts = re.split(r"^### `([a-z_]+)`\n", README, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts) - 1, 2)}


def test_every_readme_example_is_an_example_rule() -> None:
    examples = _examples()
    shown = _readme_rules()
    assert len(shown) >= len(rule_kinds())
    for rule in shown:
        assert rule == examples.get(rule["id"]), f"README example {rule['id']} differs from rules/examples"


def test_every_kind_has_a_section_with_every_key_and_an_example() -> None:
    sections = _sections()
    shown = {r["kind"] for r in _readme_rules()}
    for name, kind in rule_kinds().items():
        assert name in sections, f"rules/README.md has no section for kind {name}"
        keys = set(kind.spec.model_fields) - {"id", "kind", "description", "enabled"}
        missing = sorted(k for k in keys if f"| `{k}` |" not in sections[name])
        assert not missing, f"kind {name}: keys {missing} are not in its README table"
        assert name in shown, f"kind {name} has no example in the README"


def test_the_examples_pass_rules_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    city = tmp_path / "city.json"
    city.write_bytes(orjson.dumps(with_air_stations(city_data())))
    for d in EXAMPLE_DIRS:
        assert main(["rules", "check", str(d)]) == 0, capsys.readouterr().out
        assert main(["rules", "check", str(d), "--city", str(city)]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "rules/examples/more: 5 rules OK against" in out and "4 when_then" in out
