"""``urban-supervisor simulate``: publish a simulated city's telemetry and print a JSON summary.

The city comes from ``--city FILE`` or is generated (``--devices N --seed S``). Lights answer
commands while the simulation runs. ``--speed F`` runs virtual time F times faster than real time;
``--speed 0`` publishes as fast as possible (load). ``--duration`` is in simulated seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import EXIT_FAILURE, EXIT_INVALID, EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="publish a simulated city's telemetry to MQTT and answer lighting commands",
        description=(
            "Publish the native telemetry of a simulated city (QoS 1, every PUBACK awaited), with "
            "optional malformed messages, and print a JSON summary (sent, acked, rate, expected "
            "InfluxDB points per measurement). Stops after --duration simulated seconds or "
            "--messages messages, whichever first."
        ),
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--city", metavar="FILE", help="city JSON file (default: generate one)")
    src.add_argument("--devices", type=int, default=200, metavar="N", help="devices of the generated city")
    src.add_argument("--air-per-zone", type=int, default=None, metavar="A",
                       help="air-quality stations per zone of the generated city, part of --devices (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated city and the telemetry")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default="5", help="MQTT protocol version")
    parser.add_argument("--username", help="MQTT user name (password from URBAN_SIM_PASSWORD)")
    parser.add_argument("--rate", type=float, default=None, metavar="R", help="max messages per second")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="simulated seconds")
    parser.add_argument("--messages", type=int, default=None, metavar="N", help="messages to send")
    parser.add_argument("--bad-ratio", type=float, default=0.0, metavar="X",
                        help="share of malformed messages, 0..1")
    parser.add_argument("--speed", type=float, default=1.0, metavar="F",
                        help="virtual time factor; 0 = as fast as possible")
    parser.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="real-time bound")
    parser.add_argument("--no-responders", action="store_true", help="do not answer lighting commands")
    parser.add_argument("--bulk", action="store_true",
                        help="publish telemetry with the bulk raw-socket publisher (MQTT 3.1.1, plain TCP, no "
                             "malformed messages): about 7x the paho publisher's rate, for load tests")
    parser.set_defaults(func=run)


def _fail(message: str, code: int = EXIT_INVALID) -> int:
    print(f"urban-supervisor simulate: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    import os

    from simulators.publisher import PublishError
    from simulators.runner import SimulatedCity
    from simulators.telemetry import CityFormatError

    if args.duration is None and args.messages is None:
        return _fail("give --duration and/or --messages")
    if not 0.0 <= args.bad_ratio < 1.0:
        return _fail(f"--bad-ratio must be within [0, 1), got {args.bad_ratio}")
    if args.speed < 0:
        return _fail(f"--speed must be >= 0, got {args.speed}")
    if args.rate is not None and args.rate <= 0:
        return _fail(f"--rate must be > 0, got {args.rate}")
    city: Any
    if args.city:
        city = args.city
    else:
        from simulators.city import DEFAULT_AIR_PER_ZONE, generate_city

        air = DEFAULT_AIR_PER_ZONE if args.air_per_zone is None else args.air_per_zone
        try:
            city = generate_city(seed=args.seed, devices=args.devices, air_per_zone=air)
        except ValueError as exc:
            return _fail(str(exc))
    password = os.environ.get("URBAN_SIM_PASSWORD") if args.username else None
    try:
        sim = SimulatedCity(
            city, host=args.host, port=args.port, seed=args.seed, speed=args.speed or None,
            rate=args.rate, bad_ratio=args.bad_ratio, protocol=args.protocol, username=args.username,
            password=password, responders=not args.no_responders, bulk=args.bulk,
        )
    except (CityFormatError, ValueError) as exc:
        return _fail(str(exc))
    try:
        with sim:
            report = sim.run(duration=args.duration, messages=args.messages, timeout=args.timeout)
            summary = sim.summary(report)
    except (PublishError, TimeoutError) as exc:
        return _fail(str(exc), EXIT_FAILURE)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return EXIT_OK if report.complete else EXIT_FAILURE
