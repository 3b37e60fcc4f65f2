"""The server's entry point."""

import gc
import sys

from django.urls import get_resolver


def test_the_server_module_loads_the_views_and_freezes_what_it_loaded():
    import teleconsult.asgi

    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # all of Django, DRF and pydicom at least
    assert "studies.dicomweb_views" in sys.modules
    teleconsult.asgi.settle_for_serving()
    assert gc.get_freeze_count() >= frozen
    assert get_resolver().url_patterns
