"""The marker of a URL the supervisor sends data to (storage, notification webhooks, push targets).

Production refuses plain ``http://`` to a host that is not loopback on every field so marked, wherever
it is nested (:func:`supervisor.config.endpoint_urls`). It lives apart from :mod:`supervisor.config` so
that the sections that config imports (``supervisor.notify.config``) can mark their own fields.
"""

from __future__ import annotations

from typing import Annotated


class _Endpoint:
    """Marks a URL-bearing field: production refuses plain HTTP to a host that is not loopback."""

    def __repr__(self) -> str:
        return "ENDPOINT"


ENDPOINT = _Endpoint()
# Annotate the field itself (``Annotated[str | None, ENDPOINT]``, ``Annotated[list[str], ENDPOINT]``)
# so that the check finds it wherever it is nested.
EndpointUrl = Annotated[str, ENDPOINT]
