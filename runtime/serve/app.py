"""The FastAPI application: routes, error handlers, the page, and the middleware in front."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .errors import install_handlers
from .metrics import CONTENT_TYPE
from .middleware import ServeMiddleware, ServeState
from .service import Service
from .streams import StreamHub

PAGE = resources.files("facestyle.serve") / "page"


def create_app(service: Service, state: ServeState | None = None, load: bool = True,
               streams: StreamHub | None = None) -> FastAPI:
    """The app over ``service``; with ``load`` its models load in the background at startup. ``streams``: the
    cameras watched (their --source streams start with the app, and all stop before the models close)."""
    state = state or ServeState()
    streams = streams or StreamHub(service)

    @asynccontextmanager
    async def lifespan(app):
        if load:
            service.start_loading()
        streams.open(asyncio.get_running_loop())
        yield
        await asyncio.to_thread(streams.close)
        service.close()

    app = FastAPI(title="facestyle", version=__version__, lifespan=lifespan,
                  description="Face verification, one-shot identification and fast neural style over HTTP. "
                              "Send images as multipart files or as base64 strings in a JSON object; "
                              "errors are {\"error\": {\"code\", \"message\", \"input\"}}.")
    app.state.service, app.state.serve, app.state.streams = service, state, streams
    install_handlers(app)

    from .routes import faces, gallery, streams as stream_routes, styles

    for module in (faces, gallery, styles, stream_routes):
        app.include_router(module.router)
    from .routes import unknowns

    app.include_router(unknowns.router)

    @app.get("/healthz", tags=["health"], summary="the process is up")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="models loaded and taking requests",
             responses={503: {"description": "still loading, nothing built, or shutting down"}})
    def readyz(request: Request):
        body = service.readiness(details=state.authorised(dict(request.scope["headers"])))
        body["draining"] = state.draining
        ready = body["ready"] and not state.draining
        body["ready"] = ready
        return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "1"})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics():
        return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    def page():
        return HTMLResponse((PAGE / "index.html").read_text(encoding="utf-8"))

    app.mount("/page", StaticFiles(directory=str(PAGE)), name="page")
    return _wrap(app, state, service)


def _wrap(app: FastAPI, state: ServeState, service: Service) -> FastAPI:
    app.add_middleware(ServeMiddleware, state=state, metrics=service.metrics)
    return app
