"""The built-in rule kinds, one module each (reference: ``rules/README.md``).

Each module exports ``KIND``, a :class:`rules.RuleKind`, declared in the
``urban_supervisor.rule_kinds`` entry-point group of ``pyproject.toml`` like a third party's kind.
"""
