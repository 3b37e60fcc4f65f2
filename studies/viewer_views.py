"""Moved: the viewer's context is ``studies.viewer``, the page ``studies.views.viewer``. Kept only
for imports outside the studies app until they follow."""

from .viewer import viewer_context

__all__ = ["viewer_context"]
