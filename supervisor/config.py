"""Configuration: one YAML file plus ``URBAN_*`` environment overrides, validated at start.

Precedence, highest first: environment (``URBAN_MQTT__HOST=broker``; ``__`` separates nesting),
then the YAML file, then the embedded defaults. Errors name the file, the key and what is wrong.
Secrets are ``SecretStr``: they never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from drivers import catalogue
from supervisor.endpoint import ENDPOINT, EndpointUrl
from supervisor.ngsi.config import NgsiConfig
from supervisor.notify.config import EmailChannel, NotificationsConfig
from supervisor.opendata.config import OpenDataConfig
from supervisor.snmp.config import SnmpConfig

ENV_PREFIX = "URBAN_"
DEFAULT_PASSWORDS = frozenset({"", "password", "admin", "changeme", "secret", "root", "guest"})

_log = logging.getLogger(__name__)


class Insecure(StrEnum):
    """What ``allow_insecure`` may waive in production: a closed set (docs/security.md)."""

    ANONYMOUS_MQTT = "anonymous_mqtt"
    PLAINTEXT_MQTT = "plaintext_mqtt"
    PLAINTEXT_HTTP = "plaintext_http"
    PLAINTEXT_SMTP = "plaintext_smtp"
    OPEN_API = "open_api"
    NO_CITY = "no_city"
    PLAINTEXT_SNMP = "plaintext_snmp"


# What each waiver costs, logged at WARNING on every start that uses it.
INSECURE_COSTS: dict[Insecure, str] = {
    Insecure.ANONYMOUS_MQTT: "the broker cannot tell the supervisor from any other client, nor limit it by ACL",
    Insecure.PLAINTEXT_MQTT: "telemetry, commands and the MQTT password cross the network readable and forgeable",
    Insecure.PLAINTEXT_HTTP: "the stored data and the endpoint's credentials cross the network readable and forgeable",
    Insecure.PLAINTEXT_SMTP: "alarm e-mails (elements, positions, impacted services) cross the network readable "
                             "and forgeable",
    Insecure.OPEN_API: "anyone who reaches the API reads every device, alarm and the network topology",
    Insecure.NO_CITY: "every device id is accepted as is (anyone allowed to publish creates series), commands are "
                      "not limited to known devices, and there are no root-cause alarms or rules",
    Insecure.PLAINTEXT_SNMP: "SNMP communities (or v3 user names without authentication) cross the network in clear: "
                             "anyone on the path reads the switches and forges their answers and traps",
}




class ConfigFileError(Exception):
    """A configuration that cannot be used; the message names file, key and problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(_Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False  # skip hostname verification (refused in production mode)

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"file not found or not a regular file: {v}")
        return v

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        return self


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = Field("urban-supervisor", min_length=1, max_length=128)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsConfig | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    qos: Literal[0, 1] = 1
    clean_start: bool = False  # persistent session: the broker keeps messages while we are down
    session_expiry: int = Field(7 * 24 * 3600, ge=0)
    # unacknowledged QoS 1 messages the broker may have in flight to the bulk session (acknowledged
    # once stored). 20,000 -> 2,000 (5 Dec 2026): with 20,000, a 3M-message `bench storm` drain made
    # Mosquitto 2.0 itself slow for its first seconds (a probe's hop to a bare watcher 17-65 ms,
    # against 1-9 ms with 2,000, loopback capture); probes p99 60-92 ms -> 28-33 ms, the drain rate
    # the same (32.1-32.8k msg/s), `bench ingest` 68-69k -> 73-74k msg/s (live, same sitting)
    receive_maximum: int = Field(2000, ge=1, le=65535)
    # messages held between the network thread and the pipeline; when full the socket is not read
    # (TCP back-pressure: the broker keeps the rest), whatever the broker makes of Receive Maximum
    inbox_max: int = Field(20000, ge=100, le=1_000_000)
    # paho with a batched read path and batched PUBACKs (supervisor/ingest/_paho_fast.py, relies on
    # paho internals); false: paho's public API only, slower (figures: docs/architecture.md). A paho
    # that is not as the fast path was verified with falls back to the plain path with an error log.
    fast_path: bool = True
    reconnect_min_delay: float = Field(0.5, gt=0)
    reconnect_max_delay: float = Field(30.0, gt=0)
    share_group: str | None = None  # MQTT 5 shared subscription group for scale-out
    # Subscription filters. None: the root of every driver filter (``city/+/traffic/+/telemetry``
    # gives ``city/#``), so that messages on unknown topics under those roots are seen and counted.
    subscriptions: list[str] | None = None
    max_payload_bytes: int = Field(256 * 1024, ge=64)
    # The control lane (supervisor/ingest/lane.py): a second, clean session subscribed to the topics of
    # the devices the commanding rules react to, processed before any bulk backlog. ``lane: false``
    # turns it off; ``lane_topics`` adds filters that are always on it (the explicit override).
    lane: bool = True
    lane_topics: list[str] = Field(default_factory=list)
    # the commanded lamps' confirmations on the lane too (else on the bulk path: under a backlog longer
    # than the command timeout, a late confirmation means a retransmission, and a failed command alarm)
    lane_confirmations: bool = True
    # A broker counter of messages it dropped (Mosquitto's, republished every sys_interval): past
    # max_queued_messages/max_queued_bytes the broker sheds messages it already acknowledged to the
    # devices; an increase raises an alarm. None: not watched (brokers without $SYS, or no ACL).
    broker_drop_counter: str | None = "$SYS/broker/publish/messages/dropped"
    # A resumed persistent session marks where the broker's backlog ends: on connecting, it publishes
    # a nonce to ``urban-supervisor/backlog-marker/<client id>`` (subscribed by this session only);
    # events taken until it came back and the inbox then ran low are judged by
    # ``rules_backlog_max_age`` (supervisor/ingest/backlog.py). The ACL must let the supervisor
    # publish and subscribe there.
    # Without the marker back within ``backlog_marker_timeout`` s, events count as live again.
    backlog_marker: bool = True
    backlog_marker_timeout: float = Field(900.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_min_delay")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        for flt in self.lane_topics:
            levels = flt.split("/")
            if not flt or any(("+" in lv or "#" in lv) and len(lv) > 1 for lv in levels) or "#" in levels[:-1]:
                raise ValueError(f"lane_topics: {flt!r} is not an MQTT topic filter")
        return self


_DURATION_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(text: str) -> int:
    """``30d``, ``104w``, ``12h`` (InfluxQL duration literals of whole hours or more) in seconds."""
    m = re.fullmatch(r"([1-9][0-9]*)([hdw])", text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration like 12h, 30d or 104w")
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


class RetentionConfig(_Section):
    """How long InfluxDB keeps what (docs/data-protection.md), provisioned at start by
    :mod:`supervisor.storage.retention` and by ``urban-supervisor storage provision``.

    ``raw`` is the database's default retention policy (``storage.retention_policy`` when set);
    ``personal_raw`` keeps the raw points of the personal measurements (household water meters,
    ``personal`` in ``supervisor/storage/schema.py``) in a policy of their own; ``hourly`` and
    ``daily`` keep the aggregates the schema declares, computed by continuous queries (InfluxDB 1)
    or tasks (InfluxDB 2). On InfluxDB 2 each policy is a bucket: ``storage.bucket`` for ``raw``,
    ``<bucket>_<policy name>`` for the others.
    """

    enabled: bool = True
    # provision: the supervisor creates and alters policies and continuous queries at start (an InfluxDB
    # admin user); skip: an administrator ran `urban-supervisor storage provision`, the supervisor
    # (a write-only user) only writes household water into its policy
    at_start: Literal["provision", "skip"] = "provision"
    raw: str = "30d"
    personal_raw: str = "14d"
    hourly: str = "730d"
    daily: str = "3650d"
    personal_policy: str = Field("personal_raw", pattern=r"^[a-z][a-z0-9_]*$")
    hourly_policy: str = Field("hourly", pattern=r"^[a-z][a-z0-9_]*$")
    daily_policy: str = Field("daily", pattern=r"^[a-z][a-z0-9_]*$")

    @field_validator("raw", "personal_raw", "hourly", "daily")
    @classmethod
    def _duration(cls, v: str) -> str:
        duration_seconds(v)
        return v

    @model_validator(mode="after")
    def _check(self) -> RetentionConfig:
        names = [self.personal_policy, self.hourly_policy, self.daily_policy]
        if len(set(names)) != len(names):
            raise ValueError(f"retention policy names must differ, got {names}")
        if duration_seconds(self.personal_raw) > duration_seconds(self.raw):
            raise ValueError(f"personal_raw ({self.personal_raw}) must not be longer than raw ({self.raw})")
        if duration_seconds(self.hourly) < 2 * 86400 or duration_seconds(self.daily) < 2 * 86400:
            raise ValueError("hourly and daily must keep at least 2d (an aggregate outlives its period)")
        return self


class StorageConfig(_Section):
    backend: Literal["influx-v1", "influx-v2", "sqlite"] = "influx-v1"
    url: EndpointUrl = "http://127.0.0.1:8086"
    # v1
    database: str = "urban"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    # v2 / v3
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    # sqlite (embedded store of the demo)
    sqlite_path: Path = Path("urban-supervisor.sqlite3")
    # batching and retries
    batch_size: int = Field(5000, ge=1, le=100_000)
    flush_interval: float = Field(0.5, gt=0, le=60)
    gzip: bool = True
    timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(8, ge=0)
    retry_min_delay: float = Field(0.2, gt=0)
    retry_max_delay: float = Field(10.0, gt=0)
    spool_dir: Path = Path("spool")
    spool_max_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    create_database: bool = True
    retention: RetentionConfig = Field(default_factory=RetentionConfig)  # docs/data-protection.md

    @model_validator(mode="after")
    def _check(self) -> StorageConfig:
        if self.backend == "influx-v2":
            missing = [k for k in ("org", "bucket", "token") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"backend influx-v2 needs {', '.join(missing)}")
        if self.backend.startswith("influx") and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        return self


class FamilyState(_Section):
    interval: float = Field(gt=0, description="expected reporting interval, seconds")


def _default_families() -> dict[str, FamilyState]:
    """Every family of the catalogue, at its default reporting interval."""
    return {f.name: FamilyState(interval=f.interval) for f in catalogue.families().values()}


class StateConfig(_Section):
    stale_factor: float = Field(3.0, ge=1.0)
    check_interval: float = Field(5.0, gt=0)
    snapshot_interval: float = Field(900.0, ge=0, description="seconds between `device_status` snapshots of every "
                                     "device (status and position, for the Grafana map), also taken at start; "
                                     "0: only at start")
    families: dict[str, FamilyState] = Field(default_factory=_default_families)


class AlarmsConfig(_Section):
    """How quiet the root-cause and device alarms are (supervisor/alarms/_manager.py)."""

    flap_window: float = Field(1800.0, ge=0, description="seconds: an alarm back within this after its clearing "
                               "is the same alarm (re-opened, flap count + 1); 0: never")
    recovery_grace_intervals: float = Field(3.0, ge=0, description="a recovering root cause holds each device not "
                                            "back yet this many of its reporting intervals, then it alarms alone")


class LorawanConfig(_Section):
    """The radio gateways observed (supervisor/state/radio.py, docs/network-observed.md#lorawan)."""

    enabled: bool = Field(True, description="watch the radio gateways that have a `lorawan_gateway` device")
    down_after: float = Field(3.0, ge=2.0, description="a gateway neither reporting statistics nor named by an "
                              "uplink for this many of its reporting intervals is down, observed (at least 2: "
                              "one missed report is never a failure)")
    require_others: bool = Field(True, description="conclude down only while another radio gateway was heard "
                                 "after this one's first missed report (all silent: the network server or the "
                                 "feed failed, not the gateways); false for a network of one gateway")
    window: int = Field(20, ge=1, le=1000, description="uplinks (RSSI, SNR) and statistics reports (rx ok/"
                        "received) per gateway its link quality is computed over")
    min_samples: int = Field(5, ge=1, description="uplinks (or statistics reports) needed before a link is judged")
    rssi_min: float = Field(-115.0, ge=-150, le=20, description="dBm: a median RSSI below this is degraded")
    snr_min: float = Field(-10.0, ge=-40, le=40, description="dB: a median SNR below this is degraded")
    ok_ratio_min: float = Field(0.8, ge=0, le=1, description="frames with a valid CRC / frames received below "
                                "this is degraded")
    store_interval: float = Field(60.0, gt=0, description="seconds: a gateway's link-quality point is written at "
                                  "most this often (when its figures changed)")


class CommandsConfig(_Section):
    """Safety of outgoing commands (street lighting is safety-relevant)."""

    rate_per_device: float = Field(2.0, gt=0, description="commands per second per device (token bucket)")
    burst: int = Field(5, ge=1, description="commands a device may receive back to back")
    only_known_devices: bool = True  # commands go only to devices of the city model


class IdentityConfig(_Section):
    """Source identifiers → model devices (see supervisor/ingest/identity.py)."""

    map: dict[str, dict[str, str]] = Field(default_factory=dict)  # driver -> {source id: device id}
    unknown: Literal["refuse", "unplaced", "accept"] = "refuse"


class ConsoleConfig(_Section):
    """The operator console, served by the API at ``/console`` (docs/console.md)."""

    enabled: bool = True
    # base-map tiles, e.g. "https://tile.example.org/{z}/{x}/{y}.png"; none: zones and streets of the model
    tile_url: Annotated[str | None, ENDPOINT] = None
    tile_attribution: str = Field("", max_length=300)

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"console.tile_url {v!r}: an http(s):// URL template is needed")
        if not all(k in v for k in ("{z}", "{x}", "{y}")) or any(c in v for c in " \"'<>;"):
            raise ValueError(f"console.tile_url {v!r}: a template with {{z}}, {{x}} and {{y}} and no quote, "
                             "space, ';' or angle bracket is needed")
        return v

    @property
    def tile_origin(self) -> str | None:
        """``scheme://host[:port]`` of the tiles (the console's CSP allows it), or ``None``."""
        if self.tile_url is None:
            return None
        parts = urlsplit(self.tile_url)
        return f"{parts.scheme}://{parts.netloc}"


class ApiConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    viewer_tokens: list[SecretStr] = Field(default_factory=list)
    operator_tokens: list[SecretStr] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)


class DriverConfig(_Section):
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


def _default_drivers() -> dict[str, DriverConfig]:
    """The native driver of every family of the catalogue, enabled with its default options."""
    return {f.driver: DriverConfig() for f in catalogue.families().values()}


class Settings(BaseSettings):
    """The supervisor's whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    mode: Literal["production", "demo", "test"] = "production"
    # production checks explicitly waived (see Insecure and enforce_production_safety)
    allow_insecure: list[Insecure] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: Path = Path("var")
    city: Path | None = None  # city description file (network model)
    #: poll the city file every this many seconds and reload it when it changed (then stayed the same
    #: for one period: a file being written is not read half way); None (default): reload by API or SIGHUP
    city_watch: float | None = Field(None, gt=0)
    rules_dir: Path | None = None
    # An event delivered from the broker's backlog (queued while the supervisor was away) and stamped
    # more than this many seconds ago commands nothing: it is stored, alarm rules still raise on it,
    # and the rules' `late_events`/`late_requests` count it. Live events are never judged by age, so
    # a device whose clock lags loses no reaction (docs/architecture.md, the backlog's end)
    rules_backlog_max_age: float = Field(120.0, gt=0)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    commands: CommandsConfig = Field(default_factory=CommandsConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    # a virtual clock (demos, benchmarks, rehearsing a night): UTC epoch seconds at start, and speed
    clock_start: float | None = None
    clock_speed: float = Field(1.0, gt=0)
    state_file: Path = Path("rules-state.json")  # rule state surviving restarts (under data_dir)
    state_save_interval: float = Field(10.0, gt=0)
    # CPython's GIL switch interval for the `run` process (sys.setswitchinterval), in ms. Every
    # socket call releases the GIL; at the default 5 ms the pipeline thread then waited up to 5 ms
    # to take it back from the MQTT and writer threads, once per acknowledgement and publish. At
    # 0.5 ms `bench rules` at 10k msg/s went from p99 339 to 119 ms, and the bulk path's cost per
    # message from 21.9 to 16.2 us (one run each, 4 Dec 2026; docs/architecture.md)
    switch_interval_ms: float = Field(0.5, ge=0.05, le=100.0)
    # A full collection (gen 2) that took longer than this many ms freezes its survivors (gc.freeze):
    # the next ones walk only what was made since. The device states, learned topics and queues a
    # storm drain builds made every gen-2 pass walk them all again: up to 180 ms, every ~6 s, the
    # storm probes' p99 (docs/architecture.md). At most once per `gc_refreeze_min_interval` s; 0: off.
    gc_refreeze_ms: float = Field(20.0, ge=0.0)
    gc_refreeze_min_interval: float = Field(30.0, ge=0.0)
    drivers: dict[str, DriverConfig] = Field(default_factory=_default_drivers)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)  # docs/notifications.md
    ngsi: NgsiConfig = Field(default_factory=NgsiConfig)  # docs/ngsi-ld.md
    opendata: OpenDataConfig = Field(default_factory=OpenDataConfig)  # docs/open-data.md
    snmp: SnmpConfig = Field(default_factory=SnmpConfig)  # docs/network-observed.md
    lorawan: LorawanConfig = Field(default_factory=LorawanConfig)  # docs/network-observed.md#lorawan

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the file (passed as init values), which beats defaults
        return (env_settings, init_settings, file_secret_settings)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.mode != "production":
            return self
        if self.mqtt.tls is not None and self.mqtt.tls.insecure:
            raise ValueError("mqtt.tls.insecure skips the broker's certificate check: not allowed in production")
        checks = {
            "mqtt.password": self.mqtt.password,
            "storage.password": self.storage.password,
            "storage.token": self.storage.token,
        }
        for key, secret in checks.items():
            if secret is not None and secret.get_secret_value().strip().lower() in DEFAULT_PASSWORDS:
                raise ValueError(f"{key} is empty or a default password; set a real secret")
        for key, tokens in (("api.viewer_tokens", self.api.viewer_tokens),
                            ("api.operator_tokens", self.api.operator_tokens)):
            for t in tokens:
                if len(t.get_secret_value()) < 16:
                    raise ValueError(f"{key}: tokens must be at least 16 characters")
        return self


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{source}: {loc}: {err['msg']}")
    return "\n".join(lines)


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration; raise :class:`ConfigFileError` with precise messages.

    ``overrides`` are applied on top of the file (used by ``demo`` and tests), below the
    environment.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigFileError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigFileError(f"{source}:{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigFileError(f"{source}: the top level must be a mapping, got {type(loaded).__name__}")
        data = loaded
    merged = _deep_merge(data, overrides)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        env_keys = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX))
        extra = f" (environment overrides present: {', '.join(env_keys)})" if env_keys else ""
        raise ConfigFileError(_format_errors(source, exc) + extra) from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ----------------------------------------------------------------------------- production safety
#
# ``load_settings`` checks the shape of a configuration; ``enforce_production_safety`` is the policy
# applied when the supervisor starts (``urban-supervisor run``): a production configuration that
# would run anonymously, in plain text beyond loopback, with an open API or without a city model is
# refused unless ``allow_insecure`` names the exception.

LOOPBACK_NAMES = frozenset({"localhost"})
SECURE_SCHEMES = frozenset({"https", "wss"})


class InsecureConfigError(ConfigFileError):
    """A production configuration refused by :func:`enforce_production_safety`; names the keys."""


@dataclass(frozen=True)
class Insecurity:
    """One unsafe property of a production configuration (never carries a secret)."""

    name: Insecure
    key: str  # the configuration key to fix
    what: str  # what production refuses
    fix: str


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped) and ``localhost``.

    Other host names are not resolved and count as remote: what a name resolves to depends on the
    resolver of the moment (and can be changed by whoever controls it), the check must not.
    """
    h = host.strip().strip("[]").rstrip(".").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        addr = ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def endpoint_urls(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(key, url)`` of every field marked :data:`ENDPOINT`, at any depth (sections, lists, dicts)."""
    for name, field in type(model).model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(model, name)
        marked = any(m is ENDPOINT for m in field.metadata)
        for sub, item in _items(key, value):
            if marked and isinstance(item, str):
                yield sub, item
            elif isinstance(item, BaseModel):
                yield from endpoint_urls(item, f"{sub}.")


def _items(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield f"{key}.{i}", item
    elif isinstance(value, dict):
        for k, item in value.items():
            yield f"{key}.{k}", item
    else:
        yield key, value


def insecurities(settings: Settings) -> list[Insecurity]:
    """Every property of ``settings`` that production refuses (whatever ``mode`` and ``allow_insecure`` say)."""
    found: list[Insecurity] = []
    m = settings.mqtt
    cert_login = m.tls is not None and m.tls.cert_file is not None
    if not (m.username or "").strip() and not cert_login:
        found.append(Insecurity(Insecure.ANONYMOUS_MQTT, "mqtt.username", "anonymous MQTT",
                                "set mqtt.username and mqtt.password (or a client certificate, "
                                "mqtt.tls.cert_file)"))
    if m.tls is None and not is_loopback(m.host):
        found.append(Insecurity(Insecure.PLAINTEXT_MQTT, "mqtt.tls",
                                f"plain MQTT to {m.host}, which is not loopback", "set mqtt.tls"))
    for key, url in endpoint_urls(settings):
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        if parts.scheme.lower() not in SECURE_SCHEMES and not is_loopback(host):
            found.append(Insecurity(Insecure.PLAINTEXT_HTTP, key,
                                    f"plain {parts.scheme or 'http'}:// to {host or '(no host)'}, which is "
                                    "not loopback", "use https://"))
    for name, ch in settings.notifications.channels.items():
        if isinstance(ch, EmailChannel) and not (ch.tls or ch.starttls) and not is_loopback(ch.host):
            found.append(Insecurity(Insecure.PLAINTEXT_SMTP, f"notifications.channels.{name}.starttls",
                                    f"plain SMTP to {ch.host}, which is not loopback", "set starttls or tls"))
    a = settings.api
    if a.enabled and not is_loopback(a.host) and not (a.viewer_tokens or a.operator_tokens):
        found.append(Insecurity(Insecure.OPEN_API, "api.host",
                                f"an API on {a.host or '(all interfaces)'}, beyond loopback, with no token",
                                "set api.viewer_tokens and api.operator_tokens"))
    sn = settings.snmp
    if sn.enabled or sn.traps.enabled:
        # which switches use a credential is in the city file, read later: a weak credential is
        # refused whatever hosts use it (an SNMP test bed on loopback runs in test mode)
        for name, cred in sorted(sn.credentials.items()):
            if cred.weak:
                what = "SNMPv2c" if cred.version == "2c" else "SNMPv3 noAuthNoPriv"
                found.append(Insecurity(Insecure.PLAINTEXT_SNMP, f"snmp.credentials.{name}",
                                        f"{what} credentials (readable and forgeable on the network)",
                                        "use SNMPv3 with auth_protocol/auth_key and priv_protocol/priv_key"))
    if settings.city is None:
        found.append(Insecurity(Insecure.NO_CITY, "city", "no city file", "set city (the network model)"))
    return found


def enforce_production_safety(settings: Settings, source: str = "configuration",
                              log: logging.Logger = _log) -> list[Insecurity]:
    """Refuse an unsafe production configuration; return the waived insecurities.

    Raises :class:`InsecureConfigError` listing every refused property, one line each
    (``<source>: <key>: production refuses ...``). Each ``allow_insecure`` entry is logged at
    WARNING, with what it costs. Demo and test modes are not checked.
    """
    if settings.mode != "production":
        return []
    found = insecurities(settings)
    allowed = dict.fromkeys(settings.allow_insecure)
    refused = [f for f in found if f.name not in allowed]
    if refused:
        raise InsecureConfigError("\n".join(
            f"{source}: {f.key}: production refuses {f.what}: {f.fix}, or list {f.name} in allow_insecure"
            for f in refused))
    for name in allowed:
        hits = [f for f in found if f.name == name]
        if not hits:
            log.warning("allow_insecure: %s is listed but this configuration does not need it: remove it", name)
        for f in hits:
            log.warning("allow_insecure: %s: %s: running with %s; cost: %s", name, f.key, f.what,
                        INSECURE_COSTS[name])
    return [f for f in found if f.name in allowed]
