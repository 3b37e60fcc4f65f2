"""The consult app's refusals: subclasses of the product's one error type
(:class:`teleconsult.errors.PortalError`), each with its HTTP status and machine-readable code.

Raised by the models, actions and modules of the app; rendered once per interface (the DRF
handler, the page middleware, ``error_frame`` on WebSockets).
"""

from __future__ import annotations

from teleconsult.errors import PortalError


class ConsultError(PortalError):
    """A consult change that cannot be made; the message says why."""

    status = 409
    code = "conflict"


class IllegalTransitionError(ConsultError):
    """Not in this state (HTTP 409)."""

    status = 409
    code = "illegal_transition"


class NotAllowedError(ConsultError):
    """Not by this person (HTTP 403)."""

    status = 403
    code = "not_allowed"


class AlreadyTakenError(IllegalTransitionError):
    code = "already_taken"


class ReportSignedError(ConsultError):
    code = "report_signed"


class FieldError(ConsultError):
    """Bad input for one field: the body also names the field (``{"file": ["..."]}``), as DRF does
    for a serializer's field errors, and a page shows the message beside that field."""

    status = 400
    field = "detail"

    def __init__(self, message: str, *, field: str | None = None, **kwargs) -> None:
        field = field or self.field
        if field != "detail":
            kwargs.setdefault(field, [message])
        super().__init__(message, **kwargs)
        self.field = field


class AttachmentRefusedError(FieldError):
    code = "attachment_refused"
    field = "file"


class ReauthenticationError(FieldError):
    """The signer did not prove it is them again (wrong or missing password or code)."""

    code = "reauthentication_failed"
    field = "password"


class IdentityConfirmationError(FieldError):
    """The patient or study changed since the consult was made, or the images name someone else:
    the signer must confirm explicitly that the report belongs to them."""

    code = "identity_changed"
    field = "confirm_identity"
    status = 409


class ReportInputError(FieldError):
    """Refused input to the report editor (a template switch over edited text, an unknown
    measurement to insert); ``field`` names what is wrong."""

    code = "report_refused"
