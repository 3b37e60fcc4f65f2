"""FHIR search values that no database query could use are a 400 OperationOutcome naming the
parameter, on SQLite and PostgreSQL alike: control characters (NUL above all), ids and references
past the database's integers, paging numbers of thousands of digits."""

from __future__ import annotations

import pytest

from tests.fhir.conftest import FHIR
from tests.fhir.test_api import outcome

pytestmark = pytest.mark.django_db

HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        ("Patient?name=a%01b", "name", "control character (U+0001)"),
        ("Patient?identifier=a%1Bb", "identifier", "control character (U+001B)"),
        ("Practitioner?email=a%7Fb", "email", "control character (U+007F)"),
        ("ImagingStudy?_id=1.2%00.3", "_id", "control character (U+0000)"),
        ("ServiceRequest?patient=Patient/" + HUGE, "patient", "names no resource"),
        ("DiagnosticReport?based-on=99999999999999999999", "based-on", "names no resource"),
        ("Patient?_id=9223372036854775808", "_id", "names no resource"),
        ("Patient?_count=" + HUGE, "_count", "is not a whole number from 1"),
        ("Patient?_offset=9223372036854775808", "_offset", "is not a whole number from 0"),
    ],
)
def test_values_no_query_could_use_are_a_400_naming_the_parameter(physician, fhir_client, query, parameter, words):
    client = fhir_client(physician)
    client.raise_request_exception = False
    issue = outcome(client.get(f"{FHIR}/{query}"), 400)
    assert issue["expression"] == [parameter]
    assert words in issue["diagnostics"]
    assert len(issue["diagnostics"]) < 300  # a long value is quoted cut short


def test_ids_are_searched_up_to_the_largest_integer_and_refused_past_it(physician, fhir_client):
    client = fhir_client(physician)
    client.raise_request_exception = False
    largest = 2**63 - 1
    assert client.get(f"{FHIR}/Patient", {"_id": str(largest)}).status_code == 200  # matches nothing
    assert client.get(f"{FHIR}/Patient", {"_offset": str(largest)}).status_code == 200
    # Only ids are numbers: a study's identifier may hold a long run of digits.
    uid = "urn:oid:2.25.329800735698586629295641978511506172918"
    assert client.get(f"{FHIR}/ImagingStudy", {"identifier": uid}).status_code == 200
    assert outcome(client.get(f"{FHIR}/Patient", {"_id": str(largest + 1)}), 400)["expression"] == ["_id"]
