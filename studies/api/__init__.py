"""The studies app's REST API (routes in ``studies.api.urls``, mounted under /api/v1/):

- ``uploads``: DICOM uploads; ``studies``: the patients and studies the user may see;
- ``photos``: a photo or PDF added to a study; ``deid``: a study's de-identified copy;
- ``access``: share links and the access history; ``link_requests``: linking patient accounts.

Refusals are ``teleconsult.errors.PortalError`` subclasses, answered by
``teleconsult.api.exception_handler``. What the pages do alike is in ``studies.web``.
"""
