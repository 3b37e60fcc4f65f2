"""The studies app's pages, one module per thing served (routes in ``studies.urls``):

- ``browse``: the study list, a study, a patient, a study's processing status;
- ``viewer``: the viewer page; ``media``: stored files and thumbnails;
- ``upload``: the browser upload page; ``photos``: adding a photo or PDF from a phone;
- ``deid``: the de-identified copy; ``downloads``: the study as a zip;
- ``access``: who has access to a study, share links and patient grants;
  ``access_history``: the administrators' search of access events;
- ``link_requests``: linking a patient's portal account to a record.

The REST API is ``studies.api``; what both do alike is in ``studies.web``.
"""
