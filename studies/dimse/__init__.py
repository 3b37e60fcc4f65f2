"""The DICOM receiving node: a C-ECHO and C-STORE SCP (pynetdicom) for known senders.

``manage.py dicom_scp`` runs it. One concern per module:

- ``contexts``: the presentation contexts offered (every storage SOP class pynetdicom knows, with
  every transfer syntax the installed codecs read, and Verification)
- ``server``: the application entity, who may associate (``studies.nodes``), what a C-STORE does
  (``studies.ingest.dimse``), TLS, and running it until a signal stops it

docs/dimse.md is the conformance statement.
"""

from .contexts import readable_transfer_syntaxes
from .server import Receiver, ssl_context

__all__ = ["Receiver", "readable_transfer_syntaxes", "ssl_context"]
