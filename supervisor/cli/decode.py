"""``urban-supervisor decode``: run one driver (or all) on one payload and print what it yields.

Observations and events are printed as JSON lines, exactly the records a driver's case files
expect. Refusals print one line on stderr naming the driver, the topic and the reason, and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_INVALID, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode one MQTT payload with a driver and print observations as JSON lines",
        description=(
            "Decode one payload (read from FILE, or stdin when FILE is '-' or absent) as if it had "
            "arrived on TOPIC. Prints one JSON line per observation and per event. Exit status 2 "
            "when the driver is unknown, does not claim the topic or refuses the payload."
        ),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--driver", metavar="NAME", help="registered driver name")
    which.add_argument(
        "--all", action="store_true", help="try every driver whose topic filters match TOPIC"
    )
    parser.add_argument("--topic", required=True, help="the MQTT topic the payload arrived on")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="a driver option, as in the configuration's drivers.NAME.options (repeatable; "
                             "VALUE is YAML, e.g. -o power_unit=kW -o timezone=Europe/Paris)")
    parser.add_argument("file", nargs="?", default="-", metavar="FILE", help="payload file, or - for stdin")
    parser.set_defaults(func=run)


def _read_payload(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as fh:
        return fh.read()


def _fail(message: str) -> int:
    print(f"urban-supervisor decode: {message}", file=sys.stderr)
    return EXIT_INVALID


def run(args: argparse.Namespace) -> int:
    import orjson
    import yaml

    from drivers import DecodeError, Driver, DriverError, UnknownDriverError, available, get
    from drivers.kit import filter_matches, records

    topic: str = args.topic
    options: dict[str, Any] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return _fail(f"--option {item!r}: expected KEY=VALUE")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            return _fail(f"--option {key}: invalid value {value!r}: {exc}")
    try:
        payload = _read_payload(args.file)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}")

    candidates: list[type[Driver]]
    if args.all:
        candidates = [cls for cls in available().values() if any(filter_matches(f, topic) for f in cls.topics)]
        if not candidates:
            return _fail(f"no installed driver claims topic {topic!r}")
    else:
        try:
            cls = get(args.driver)
        except UnknownDriverError as exc:
            return _fail(f"{exc} (topic {topic!r})")
        if not any(filter_matches(f, topic) for f in cls.topics):
            return _fail(
                f"driver {cls.name!r} does not claim topic {topic!r} (its filters: {', '.join(cls.topics)})"
            )
        candidates = [cls]

    out = sys.stdout.buffer
    decoded_by: list[str] = []
    failures: list[str] = []
    for cls in candidates:
        try:
            driver = cls(options)
            decoded = driver.decode(topic, payload)
        except DecodeError as exc:
            failures.append(f"driver {cls.name!r} refused topic {topic!r}: {exc.reason}: {exc.detail}")
            continue
        except DriverError as exc:
            failures.append(f"driver {cls.name!r} cannot start: {exc}")
            continue
        decoded_by.append(cls.name)
        for rec in records(driver, decoded):
            if args.all:
                rec["driver"] = cls.name
            out.write(orjson.dumps(rec) + b"\n")
    out.flush()
    for message in failures:
        print(f"urban-supervisor decode: {message}", file=sys.stderr)
    if args.all:
        print(
            f"urban-supervisor decode: decoded by {', '.join(decoded_by) or 'none'} "
            f"(tried {', '.join(c.name for c in candidates)})",
            file=sys.stderr,
        )
    return EXIT_OK if decoded_by else EXIT_INVALID
