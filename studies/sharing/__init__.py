"""Share links: one study, read-only, for whoever holds the link (``/s/<token>/``).

- ``links``: making, finding, unlocking and listing links (no views; ``studies.permissions``
  reads it too). Its public functions are re-exported here: ``sharing.create_share(...)``.
- ``views``: what the link's holder sees; ``urls``: mounted at ``/s/``.
- ``dicomweb``: the DICOMweb read routes again, under the link.

Making and revoking links from the study's access page is in ``studies.views.access``; the REST
API in ``studies.api.access``.
"""

from .links import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MAX_PASSCODE,
    MIN_PASSCODE,
    SESSION_KEY,
    TOKEN_BYTES,
    NewShareLink,
    PasscodeOutcome,
    PasscodeTry,
    ShareError,
    create_share,
    find_link,
    hash_token,
    is_unlocked,
    links_of,
    may_share,
    try_passcode,
    unlock,
    usable_link,
)

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MAX_PASSCODE",
    "MIN_PASSCODE",
    "SESSION_KEY",
    "TOKEN_BYTES",
    "NewShareLink",
    "PasscodeOutcome",
    "PasscodeTry",
    "ShareError",
    "create_share",
    "find_link",
    "hash_token",
    "is_unlocked",
    "links_of",
    "may_share",
    "try_passcode",
    "unlock",
    "usable_link",
]
