"""QIDO-RS routes: studies, series and instances the user may see, matching the query."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ...models import Instance, Series
from ...permissions import get_series_for_user, get_study_for_user, visible_branches, visible_studies
from .. import qido
from .common import Urls, dicomweb_route, json_response


def qido_response(request: HttpRequest, data: list, query: qido.QidoQuery, more: bool) -> HttpResponse:
    response = json_response(request, data)
    warning = qido.warning_header(query, more)
    if warning:
        response["Warning"] = warning
    return response


def search_studies(request: HttpRequest, user) -> HttpResponse:
    query = qido.parse_qido(request.GET, "study")
    urls = Urls(request)
    data, more = qido.search_studies(visible_studies(user), query, urls.study, branches=visible_branches(user))
    return qido_response(request, data, query, more)


def _series_url(urls: Urls) -> Callable:
    return lambda s: urls.series(s.study.study_instance_uid, s.series_instance_uid)


def _instance_url(urls: Urls) -> Callable:
    return lambda i: urls.instance(i.series.study.study_instance_uid, i.series.series_instance_uid, i.sop_instance_uid)


@dicomweb_route()
def search_all_series(request: HttpRequest, user) -> HttpResponse:
    query = qido.parse_qido(request.GET, "series")
    series = Series.objects.filter(study__in=visible_studies(user))
    data, more = qido.search_series(series, query, _series_url(Urls(request)), with_study=True)
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_study_series(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    query = qido.parse_qido(request.GET, "series")
    study = get_study_for_user(user, study_uid)
    data, more = qido.search_series(
        Series.objects.filter(study=study), query, _series_url(Urls(request)), with_study=False
    )
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_all_instances(request: HttpRequest, user) -> HttpResponse:
    query = qido.parse_qido(request.GET, "instance")
    instances = Instance.objects.filter(series__study__in=visible_studies(user))
    data, more = qido.search_instances(instances, query, _instance_url(Urls(request)))
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_study_instances(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    query = qido.parse_qido(request.GET, "instance")
    study = get_study_for_user(user, study_uid)
    instances = Instance.objects.filter(series__study=study)
    data, more = qido.search_instances(instances, query, _instance_url(Urls(request)))
    return qido_response(request, data, query, more)


@dicomweb_route()
def search_series_instances(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    query = qido.parse_qido(request.GET, "instance")
    series = get_series_for_user(user, study_uid, series_uid)
    data, more = qido.search_instances(series.instances.all(), query, _instance_url(Urls(request)))
    return qido_response(request, data, query, more)
