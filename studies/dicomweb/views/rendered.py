"""WADO-RS rendered resources and thumbnails: JPEG or PNG pictures of instances, frames and series."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.http.response import Http404
from PIL import Image

from teleconsult.responses import StreamingResponse

from ...models import Instance
from ...permissions import get_instance_for_user, get_series_for_user, get_study_for_user
from ...rendering import NotAnImage, RenderError, encode, fit_within, render_frame, render_thumbnail
from ..errors import DicomwebError
from ..media_types import accepts_any, parse_accept
from ..multipart import multipart_content_type, multipart_stream, new_boundary
from ..wado import RenderParams, parse_frame_list, parse_render_params
from .common import dicomweb_route, image_response, open_stored, ordered


@contextlib.contextmanager
def rendering_refusals(instance: Instance) -> Iterator[None]:
    """Rendering's refusals as DICOMweb answers: no image is a 404, an image that cannot be rendered a 422."""
    try:
        yield
    except NotAnImage:
        raise DicomwebError(f"Instance {instance.sop_instance_uid} holds no image to render.", status=404) from None
    except RenderError as exc:
        raise DicomwebError(f"Instance {instance.sop_instance_uid} cannot be rendered: {exc}", status=422) from None


def render(instance: Instance, frame: int, params: RenderParams) -> bytes:
    with open_stored(instance) as handle, rendering_refusals(instance):
        image = render_frame(handle, frame=frame, window=params.window, viewport=params.viewport)
    return encode(image, params.media_type, quality=params.quality)


@dicomweb_route()
def rendered_instance(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    params = parse_render_params(request.GET, request.headers.get("Accept"))
    return image_response(render(instance, 1, params), params.media_type)


@dicomweb_route()
def rendered_frame(
    request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    params = parse_render_params(request.GET, request.headers.get("Accept"))
    numbers = parse_frame_list(frame_list, instance.number_of_frames or 1)
    if len(numbers) != 1:
        raise DicomwebError("frame: ask for one frame number to render.")
    return image_response(render(instance, numbers[0], params), params.media_type)


@dicomweb_route()
def rendered_series(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    params = parse_render_params(request.GET, request.headers.get("Accept"))
    instances = list(ordered(series.instances.filter(has_pixel_data=True)).defer("metadata"))
    if not instances:
        raise Http404("This series holds no images.")
    first = render(instances[0], 1, params)

    def parts():
        yield params.media_type, [first]
        for instance in instances[1:]:
            try:
                yield params.media_type, [render(instance, 1, params)]
            except DicomwebError:
                continue  # an instance that cannot be rendered is left out of the series

    boundary = new_boundary()
    return StreamingResponse(
        multipart_stream(parts(), boundary),
        content_type=multipart_content_type(params.media_type, boundary),
    )


def representative(instances) -> Instance:
    """The middle image of the first series with images: what a study or series thumbnail shows."""
    images = ordered(instances.filter(has_pixel_data=True)).defer("metadata")
    first = images.first()
    if first is None:
        raise Http404("There is no image to show.")
    in_series = images.filter(series_id=first.series_id)
    count = in_series.count()
    return in_series[count // 2] if count > 1 else first


def thumbnail_response(request: HttpRequest, instance: Instance) -> HttpResponse:
    params = parse_render_params(request.GET, request.headers.get("Accept"))
    ranges = parse_accept(request.GET.get("accept") or request.headers.get("Accept"))
    # The stored thumbnail serves unless a window is asked for or the viewport is larger than it.
    if instance.status == Instance.Status.READY and instance.thumbnail and params.window is None:
        name = instance.thumbnail.name.lower()
        stored_type = "image/png" if name.endswith(".png") else "image/jpeg"
        try:
            with instance.thumbnail.storage.open(instance.thumbnail.name, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            data = b""
        image = Image.open(io.BytesIO(data)) if data else None
        fits = image is not None and (
            params.viewport is None or (image.width <= params.viewport[0] and image.height <= params.viewport[1])
        )
        if fits and accepts_any(ranges, stored_type):
            return image_response(data, stored_type)
        if fits or (image is not None and params.viewport and max(image.size) >= max(params.viewport)):
            if params.viewport:
                image = fit_within(image, params.viewport)
            return image_response(encode(image, params.media_type, quality=params.quality), params.media_type)
    with open_stored(instance) as handle, rendering_refusals(instance):
        data = render_thumbnail(
            handle, viewport=params.viewport, window=params.window, media_type=params.media_type, quality=params.quality
        )
    return image_response(data, params.media_type)


@dicomweb_route()
def study_thumbnail(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    study = get_study_for_user(user, study_uid)
    return thumbnail_response(request, representative(Instance.objects.filter(series__study=study)))


@dicomweb_route()
def series_thumbnail(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    return thumbnail_response(request, representative(series.instances.all()))


@dicomweb_route()
def instance_thumbnail(request: HttpRequest, user, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    return thumbnail_response(request, instance)
