"""Bearer-token access control with two roles.

- *viewer* tokens (``api.viewer_tokens``) may read;
- *operator* tokens (``api.operator_tokens``) may read and write.

Reads are open (no token needed) only when **no** viewer token **and no** operator token is
configured. Writes always need an operator token: with no operator token configured they are
refused with 403. A missing or unknown token answers 401; a viewer token on a write answers 403.
``/metrics`` is open unless viewer tokens are configured; ``/health`` is always open.

Tokens are compared in constant time: the presented token is compared with *every* configured
token (``hmac.compare_digest`` over SHA-256 digests, so the length of a configured token does not
leak either), without stopping at the first match. Tokens never appear in logs or error messages;
a principal is named by its role and position in the configuration (``operator#1``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from supervisor.config import ApiConfig

Role = Literal["anonymous", "viewer", "operator"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the role of the token and a name that does not reveal it."""

    role: Role
    name: str

    @property
    def can_write(self) -> bool:
        return self.role == "operator"


ANONYMOUS = Principal("anonymous", "anonymous")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenAuth:
    """The configured tokens, kept as digests; answers who a presented token belongs to."""

    def __init__(self, cfg: ApiConfig) -> None:
        self._tokens: list[tuple[bytes, Principal]] = []
        for i, t in enumerate(cfg.operator_tokens, 1):
            self._tokens.append((_digest(t.get_secret_value()), Principal("operator", f"operator#{i}")))
        for i, t in enumerate(cfg.viewer_tokens, 1):
            self._tokens.append((_digest(t.get_secret_value()), Principal("viewer", f"viewer#{i}")))
        self.has_viewers = bool(cfg.viewer_tokens)
        self.has_operators = bool(cfg.operator_tokens)

    @property
    def open_reads(self) -> bool:
        """Reads need no token only when no token at all is configured."""
        return not self.has_viewers and not self.has_operators

    def identify(self, token: str) -> Principal | None:
        """The principal of ``token``, or ``None``; compares against every token, in constant time."""
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self._tokens:
            # no early exit: the time taken does not tell which token (if any) matched
            if hmac.compare_digest(presented, digest) and found is None:
                found = principal
        return found
