"""FHIR R4 (JSON) under ``/fhir/r4/``: the consult service as an EHR sees it.

An order comes from the EHR as a ``ServiceRequest`` and becomes a consult exactly as the page and
the REST API make one (``consultations.actions``); the signed report goes back as a
``DiagnosticReport``. Patients, clinicians and studies are read as ``Patient``, ``Practitioner`` and
``ImagingStudy``. Every resource is built and checked with ``fhir.resources`` (its R4B models, the
R4 JSON of these resources); who may see what is decided by the same permission functions as every
other route. docs/fhir.md says what is supported.

Modules: ``links`` (addresses and code systems), ``resources`` (model -> FHIR), ``registry`` (each
resource type: who sees which rows, its search parameters), ``search`` (parameters -> querysets),
``bundles``, ``intake`` (ServiceRequest -> consult), ``capability`` (``metadata``), ``media``
(content negotiation), ``errors`` (OperationOutcome), ``views`` and ``urls``.
"""
