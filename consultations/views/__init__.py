"""The consult pages, one module per thing they serve: requesting a consult (``request``), the
consult and its transitions (``consult``), its care team (``colleagues``), the worklists
(``worklist``), the report (``report``), notifications (``notifications``), the patient portal
(``portal``) and the patient's questions on the consult page (``questions``).

Each view checks access first (404 for outsiders), declares where a refused change sends the
browser back (``teleconsult.errors.on_refusal``), calls one action and redirects or renders. A
refusal (``PortalError``) propagates to ``PortalErrorMiddleware``, which flashes its message; views
catch one only to show it beside a form field.
"""
