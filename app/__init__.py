"""The serving app: a model package behind HTTP, with validation, micro-batching and payload capture.

See docs/app.md. Entry points: ``python -m app`` (local and the image) and :func:`app.factory.create_app`.
"""
