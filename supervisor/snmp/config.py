"""The ``snmp:`` section: polling, traps and the credentials the city file names.

The city file gives each switch a management address, the *name* of its credentials and the
agent's SNMPv3 engine id (``mgmt: {host, port, credentials, engine_id}``); the secrets are here, as
``SecretStr`` (never in ``repr``, logs or errors). SNMPv2c communities and SNMPv3
``noAuthNoPriv`` users cross the network in clear: production refuses them
(``Insecure.PLAINTEXT_SNMP``, supervisor/config.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: an snmpEngineID in hex, 5 to 32 bytes (RFC 3411), ``0x`` optional: in ``snmp.credentials`` and in the
#: city file's ``mgmt.engine_id``
ENGINE_ID = r"(0x)?(?:[0-9A-Fa-f]{2}){5,32}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SnmpV2c(_Section):
    version: Literal["2c"]
    community: SecretStr

    @property
    def weak(self) -> bool:
        return True


AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["DES", "AES", "AES-192", "AES-256"]


class SnmpV3(_Section):
    version: Literal["3"]
    user: str = Field(min_length=1)
    auth_protocol: AuthProtocol | None = None
    auth_key: SecretStr | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key: SecretStr | None = None
    #: the agents' snmpEngineID (hex) for the switches whose city file gives none (``mgmt.engine_id``):
    #: a v3 trap is authenticated against the sender's engine id (supervisor/snmp/traps.py)
    engine_id: str | None = Field(None, pattern=f"^{ENGINE_ID}$")

    @model_validator(mode="after")
    def _levels(self) -> SnmpV3:
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise ValueError("auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError("priv_protocol and priv_key go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError("privacy needs authentication (set auth_protocol and auth_key)")
        for name, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
            if key is not None and len(key.get_secret_value()) < 8:
                raise ValueError(f"{name}: SNMPv3 keys are at least 8 characters")
        return self

    @field_validator("engine_id")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        return None if v is None else v.removeprefix("0x").lower()

    @property
    def level(self) -> str:
        if self.priv_protocol is not None:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol is not None else "noAuthNoPriv"

    @property
    def weak(self) -> bool:
        return self.auth_protocol is None


Credentials = Annotated[SnmpV2c | SnmpV3, Field(discriminator="version")]


class TrapConfig(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1162, ge=0, le=65535, description="UDP port (0: any free port); 162 needs privileges")
    engine_id: str | None = Field(None, pattern=f"^{ENGINE_ID}$", description=(
        "the receiver's own snmpEngineID (hex), that SNMPv3 INFORMs are authenticated against (agents "
        "discover it); keep it stable across restarts. Default: pysnmp's, new at each start"))

    @field_validator("engine_id")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        return None if v is None else v.removeprefix("0x").lower()


class SnmpConfig(_Section):
    """Polling the switches the city file gives a ``mgmt`` address, and receiving their traps."""

    enabled: bool = False
    interval: float = Field(60.0, gt=0, description="seconds between the starts of two poll rounds")
    timeout: float = Field(2.0, gt=0, description="seconds per request before a retry")
    retries: int = Field(1, ge=0, le=10)
    concurrency: int = Field(32, ge=1, le=1024, description="switches polled at once")
    max_repetitions: int = Field(64, ge=1, le=200, description="GETBULK rows per request (at most: a switch is "
                                 "asked for as many rows as it has ports)")
    lldp_interval: float = Field(600.0, ge=0, description="seconds between two LLDP drift checks (0: never; "
                                 "`urban-supervisor model drift` checks on demand)")
    credentials: dict[str, Credentials] = Field(default_factory=dict)
    traps: TrapConfig = Field(default_factory=TrapConfig)
