"""Static files storage: hashed names, compressed copies, and ES module imports rewritten too."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    # The viewer and consult room are ES modules importing each other; rewriting those imports to
    # hashed names means a browser never mixes old and new modules after a deploy.
    support_js_module_import_aggregation = True
