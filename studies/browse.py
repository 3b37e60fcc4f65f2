"""Searching, sorting and summarising studies for the study browser pages.

Every list here starts from ``studies.permissions.visible_studies``; the annotations are
correlated subqueries, so a page of studies costs the same number of queries whatever its length.
"""

from __future__ import annotations

from collections.abc import Iterable

from django import forms
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from .models import Instance, Series, Study
from .paging import Order, ordered_keys
from .permissions import visible_branches, visible_studies

# The list's default: newest upload first, so what was just uploaded is on top. Its first page is
# read along each path of the user's visibility rule (studies.paging.ordered_keys).
UPLOADED = Order((("created_at", True), ("pk", True)))
# Sort keys offered on the list page, and the ordering each one means. Studies without a date
# go last whichever way dates are sorted.
SORT_ORDERINGS = {
    "uploaded": tuple(UPLOADED.expressions({})),
    "newest": (F("study_date").desc(nulls_last=True), F("study_time").desc(nulls_last=True), "-created_at"),
    "oldest": (F("study_date").asc(nulls_last=True), F("study_time").asc(nulls_last=True), "created_at"),
    "patient": ("patient__name", "patient__patient_id", F("study_date").desc(nulls_last=True), "-created_at"),
    "modality": ("modalities", F("study_date").desc(nulls_last=True), "-created_at"),
}
SORT_CHOICES = [
    ("uploaded", "Newest upload"),
    ("newest", "Study date, newest first"),
    ("oldest", "Study date, oldest first"),
    ("patient", "Patient name"),
    ("modality", "Modality"),
]
DEFAULT_SORT = "uploaded"
# Sorts whose first pages are read per path of the visibility rule.
BRANCH_ORDERS = {"uploaded": UPLOADED}


class StudyFilterForm(forms.Form):
    """The list page's search form; a bad value becomes a form error and that filter is dropped."""

    q = forms.CharField(
        label="Patient name or ID",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. Doe Jane or PAT-123"}),
    )
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    modality = forms.ChoiceField(label="Modality", required=False)
    sort = forms.ChoiceField(label="Sort by", required=False, choices=SORT_CHOICES)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["modality"].choices = [("", "Any")] + [(m, m) for m in MODALITIES]

    def clean(self) -> dict:
        data = super().clean()
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_to and date_from > date_to:
            self.add_error("date_to", "The end of the date range is before its start.")
        return data

    def valid_filters(self) -> dict:
        """The values that passed validation, so one bad field does not discard the others."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if name not in self.errors and value}


# The modality filter's choices: the same for everyone (they reveal nothing of what others stored)
# and free to offer (a DISTINCT over every visible series costs seconds at a hospital's scale).
MODALITIES = ["CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "SR", "US", "XA", "XC", "DOC"]


def search_studies(studies: QuerySet, filters: dict) -> QuerySet:
    """Apply the list page's filters (``StudyFilterForm.valid_filters()``) to ``studies``, in the
    order they ask for."""
    return filter_studies(studies, filters).order_by(*SORT_ORDERINGS[sort_of(filters)])


def sort_of(filters: dict) -> str:
    sort = filters.get("sort") or DEFAULT_SORT
    return sort if sort in SORT_ORDERINGS else DEFAULT_SORT


def filter_studies(studies: QuerySet, filters: dict) -> QuerySet:
    """``studies`` narrowed by the list page's filters, in no particular order."""
    if query := filters.get("q"):
        # Every word must match the name (stored as Doe^Jane), the PatientID or the accession number.
        for term in query.replace("^", " ").split():
            studies = studies.filter(
                Q(patient__name__icontains=term)
                | Q(patient__patient_id__icontains=term)
                | Q(accession_number__iexact=term)
            )
    if date_from := filters.get("date_from"):
        studies = studies.filter(study_date__gte=date_from)
    if date_to := filters.get("date_to"):
        studies = studies.filter(study_date__lte=date_to)
    if modality := filters.get("modality"):
        studies = studies.filter(Exists(Series.objects.filter(study=OuterRef("pk"), modality=modality)))
    return studies


def keys_in_order(user, filters: dict):
    """For the list page's paginator: a function giving the keys of the first ``stop`` matches,
    read per path of the user's visibility rule, where the sort allows it; else None."""
    order = BRANCH_ORDERS.get(sort_of(filters))
    branches = visible_branches(user) if order else None
    if branches is None:
        return None
    # A grant keeps a copy of its study's date and search text: the date filters and the words
    # searched for narrow a walk of grants too.
    dates = {name: filters[name] for name in ("date_from", "date_to") if name in filters}
    words = (filters.get("q") or "").replace("^", " ").split()

    def narrow_walk(walk):
        return filter_studies(walk, dates).containing(*words)

    return lambda stop: ordered_keys(branches, lambda found: filter_studies(found, filters), order, stop, narrow_walk)


def _count_of(queryset: QuerySet) -> Coalesce:
    counted = queryset.order_by().values("series__study").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def first_thumbnail_uid() -> Subquery:
    """SOPInstanceUID of the study's first instance with a ready thumbnail (series, then instance order)."""
    ready = (
        Instance.objects.filter(series__study=OuterRef("pk"), status=Instance.Status.READY)
        .exclude(thumbnail="")
        .order_by(F("series__series_number").asc(nulls_last=True), "series__created_at", "instance_number", "pk")
    )
    return Subquery(ready.values("sop_instance_uid")[:1])


def with_summary(studies: QuerySet) -> QuerySet:
    """Add ``thumbnail_uid``, ``series_count``, ``instance_count``, ``pending_count`` and ``failed_count``."""
    in_study = Instance.objects.filter(series__study=OuterRef("pk"))
    series_counted = (
        Series.objects.filter(study=OuterRef("pk")).order_by().values("study").annotate(n=Count("pk")).values("n")
    )
    return studies.select_related("patient").annotate(
        thumbnail_uid=first_thumbnail_uid(),
        series_count=Coalesce(Subquery(series_counted, output_field=IntegerField()), Value(0)),
        instance_count=_count_of(in_study),
        pending_count=_count_of(in_study.filter(status=Instance.Status.PENDING)),
        failed_count=_count_of(in_study.filter(status=Instance.Status.FAILED)),
    )


def recent_studies(user, limit: int = 5) -> list[Study]:
    """The user's latest visible studies, newest upload first, with their summary."""
    return list(with_summary(visible_studies(user).order_by("-created_at", "-pk"))[:limit])


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many instances are in each processing status (every status present, zero or not)."""
    counts = dict.fromkeys(Instance.Status.values, 0)
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts
