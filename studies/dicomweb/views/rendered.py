"""WADO-RS rendered resources and thumbnails: JPEG, PNG or GIF pictures of instances, frames, series and studies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.http.response import Http404

from teleconsult.responses import StreamingResponse

from ...models import Instance
from ...permissions import get_instance_for_user, get_series_for_user, get_study_for_user
from ...rendering import NotAnImage, RenderError, encode, render_frame, render_thumbnail, stored_thumbnail
from ..errors import DicomwebError
from ..media_types import MediaRange, accepts_any, parse_accept
from ..multipart import multipart_content_type, multipart_stream, new_boundary
from ..wado import RENDERED_TYPES, RenderParams, parse_frame_list, parse_render_params
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


def several_params(request: HttpRequest, count: int) -> tuple[RenderParams, bool]:
    """Rendering parameters for a study or series, and whether the answer is multipart.

    A Rendered Study or Series holds a rendered representation of each of its instances
    (PS3.18 10.4.1.1.3): one part per instance in multipart/related, the default. A single-part
    type such as ``image/jpeg`` holds one image, so it is answered only for one image; for more it
    is 406, never several images under one image's media type.
    """
    asked = request.GET.get("accept") or request.headers.get("Accept")
    refused = None
    for media_range in parse_accept(asked) or [MediaRange("*/*", {}, 1.0)]:
        multipart = media_range.type in ("*/*", "multipart/related", "multipart/*")
        wanted = media_range.part_type if multipart else media_range.type
        media_type = accepts_any(parse_accept(wanted), *RENDERED_TYPES)
        if media_type is None:
            continue
        if not multipart and count > 1:
            refused = media_type
            continue
        others = {key: value for key, value in request.GET.items() if key != "accept"}
        return parse_render_params(others, media_type), multipart
    if refused is not None:
        raise DicomwebError(
            f"There are {count} images here: they are rendered as multipart/related; "
            f'type="{refused}", one part per instance. Ask with that Accept header, or for one image '
            "at .../instances/{uid}/rendered.",
            status=406,
        )
    raise DicomwebError(
        'Rendered studies and series are available as multipart/related; type="image/jpeg" (or image/png, image/gif).',
        status=406,
    )


def rendered_many(request: HttpRequest, instances) -> HttpResponse:
    """The first frame of each image instance, rendered: one part each, or a single image."""
    instances = list(ordered(instances.filter(has_pixel_data=True)).defer("metadata"))
    if not instances:
        raise Http404("There are no images here.")
    params, multipart = several_params(request, len(instances))
    first = render(instances[0], 1, params)
    if not multipart:
        return image_response(first, params.media_type)

    def parts():
        yield params.media_type, [first]
        for instance in instances[1:]:
            try:
                yield params.media_type, [render(instance, 1, params)]
            except DicomwebError:
                continue  # an instance that cannot be rendered is left out

    boundary = new_boundary()
    return StreamingResponse(
        multipart_stream(parts(), boundary),
        content_type=multipart_content_type(params.media_type, boundary),
    )


@dicomweb_route()
def rendered_series(request: HttpRequest, user, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(user, study_uid, series_uid)
    return rendered_many(request, series.instances.all())


@dicomweb_route()
def rendered_study(request: HttpRequest, user, study_uid: str) -> HttpResponse:
    study = get_study_for_user(user, study_uid)
    return rendered_many(request, Instance.objects.filter(series__study=study))


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
    if params.window is None:
        stored = stored_thumbnail(
            instance,
            viewport=params.viewport,
            media_type=params.media_type,
            quality=params.quality,
            accepts=lambda media_type: accepts_any(ranges, media_type),
        )
        if stored is not None:
            return image_response(*stored)
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
