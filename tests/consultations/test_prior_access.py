"""A prior pulled for a consult (studies.priors grants it to the care team with the consult as the
grant's source) follows the consult's own study: whoever joins the care team later sees it too, and
whoever leaves, or everyone when the consult is cancelled, stops seeing it."""

from __future__ import annotations

import pytest

from consultations import actions
from studies.models import AccessGrant, Study
from studies.permissions import grant_access
from tests.factories import make_study

pytestmark = pytest.mark.django_db


def sees(user, study) -> bool:
    return Study.objects.visible_to(user).filter(pk=study.pk).exists()


@pytest.fixture
def prior(accepted, physician, specialist):
    """A study of another practice, pulled for the consult and granted to its care team then."""
    pulled = make_study()
    for user in (physician, specialist):
        grant_access(user=user, study=pulled, reason=AccessGrant.Reason.CONSULT, source=str(accepted.pk))
    return pulled


def test_a_colleague_added_later_sees_the_prior_and_loses_it_when_removed(
    accepted, prior, physician, colleague, django_capture_on_commit_callbacks
):
    assert not sees(colleague, prior)
    with django_capture_on_commit_callbacks(execute=True):
        actions.add_participant(accepted, by=physician, user=colleague)
    assert sees(colleague, prior) and sees(colleague, accepted.study)
    with django_capture_on_commit_callbacks(execute=True):
        actions.remove_participant(accepted, by=physician, user=colleague)
    assert not sees(colleague, prior)


def test_cancelling_the_consult_ends_everyones_access_to_the_prior(
    accepted, prior, physician, specialist, django_capture_on_commit_callbacks
):
    assert sees(specialist, prior)
    with django_capture_on_commit_callbacks(execute=True):
        actions.cancel_consult(accepted, by=physician, reason="Sent to the wrong service")
    assert not sees(specialist, prior)
    assert not sees(physician, prior)  # another practice's study: the grant was the only way in
