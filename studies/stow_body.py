"""Moved to ``studies.dicomweb.stow_body``; kept for ``teleconsult.asgi`` until it imports from there."""

from .dicomweb.stow_body import SCOPE_KEY, StowBodyReader

__all__ = ["SCOPE_KEY", "StowBodyReader"]
