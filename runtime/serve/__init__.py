"""``facestyle serve``: an HTTP service over the runtime (FastAPI + uvicorn, extra ``serve``).

Layout: ``service`` (the runtime behind the endpoints: models, micro-batchers, gallery; no web code),
``app`` (the FastAPI application), ``routes/`` (the endpoints, by group), ``errors`` (the one mapping
from the facestyle.errors hierarchy to HTTP status codes), ``middleware`` (body limit, token, draining,
timing), ``metrics`` (Prometheus text), ``server`` (uvicorn with a draining SIGTERM) and ``page/`` (the
web page at ``/``). Importing this package imports neither FastAPI nor onnxruntime.
"""
