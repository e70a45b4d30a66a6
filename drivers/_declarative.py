"""The old, private name of :mod:`drivers.kit`, kept so that drivers written against it still import.

New code imports ``drivers.kit``; this module re-exports exactly its public names.
"""

from .kit import *  # noqa: F403  (the whole public kit, by its ``__all__``)
from .kit import __all__ as _public

__all__ = list(_public)
