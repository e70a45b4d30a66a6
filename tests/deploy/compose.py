"""Helpers of the deployment tests: the compose file, .env.example, variable interpolation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
ACL_FILE = ROOT / "deploy" / "mosquitto" / "acl"
CONTAINER_CONFIG = ROOT / "deploy" / "urban-supervisor" / "config.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ is a literal $
_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_example() -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example: not KEY=VALUE: {raw!r}"
        out[key.strip()] = value.strip()
    return out


def references(text: str) -> list[tuple[str, str, str]]:
    """(name, operator, argument) of every variable reference in ``text``."""
    out = []
    for m in _REF.finditer(text):
        if m.group(0) == "$$":
            continue
        out.append((m.group(1) or m.group(4), m.group(2) or "", m.group(3) or ""))
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string value."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2) or "", m.group(3) or ""
        value = env.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return arg
            return value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"{name}: {arg}")
            return value
        return value or ""

    return _REF.sub(sub, text)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def port_targets(service: dict[str, Any]) -> list[int]:
    """Container ports of the ``ports`` mappings ("host:container" short syntax)."""
    out = []
    for p in service.get("ports", []):
        out.append(int(str(p).rsplit(":", 1)[-1].split("/")[0]))
    return out


def conf_directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value.strip())
    return out


def acl_users(path: Path = ACL_FILE) -> dict[str, list[tuple[str, str]]]:
    """user → [(access, topic)] of a Mosquitto ACL file."""
    users: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user":
            current = words[1]
            users[current] = []
        elif words[0] == "topic":
            assert current is not None, "topic outside a user block applies to anonymous clients"
            access, topic = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            users[current].append((access, topic))
    return users
