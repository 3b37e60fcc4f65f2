"""The consult REST API, one module per resource: ``consults`` (requests, transitions, report),
``annotations``, ``room`` (chat messages), ``export`` (measurements as DICOM SR), ``colleagues``
(invitations), ``notifications`` and ``templates``; serializers in ``serializers``. Routed by
``consultations.api_urls``.

Refusals are ``teleconsult.errors.PortalError``s, answered by the API's exception handler.
"""
