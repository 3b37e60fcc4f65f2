"""What rendering raises: no image to render, or an image that cannot be rendered."""

from __future__ import annotations

from teleconsult.errors import PortalError


class NotAnImage(Exception):  # noqa: N818 (name fixed by the rendering contract)
    """The object holds no pixel data: a structured report, RT plan, presentation state, PDF..."""


class RenderError(PortalError):
    """The object should hold an image but it cannot be decoded or rendered; the message says why."""

    status = 422
    code = "render_failed"
