"""Webhooks: events of a practice's consults and studies pushed to URLs its admins (or, for every
practice, the administrators) subscribe, signed, retried and logged (docs/webhooks.md).

- ``targets``: which URLs may be sent to (https, public addresses: the SSRF guard)
- ``subscriptions``: who manages which subscription, and every change to one
- ``events``: which timeline entries and ingests are events, and who is told
- ``payloads``: what a delivery says (ids and FHIR references; the resource only when asked)
- ``delivery``, ``tasks``: one signed try, retries with back-off, pausing a failing subscription
- ``signing``: the ``Teleconsult-Signature`` header
- ``log``: the bounded delivery log
- ``views``, ``api``: the pages and the REST API
"""
