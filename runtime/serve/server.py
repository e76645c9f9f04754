"""Running the service: the command's options, and uvicorn with a draining SIGTERM.

On SIGTERM (or Ctrl-C) the server first drains: requests in flight finish, new ones get 503 with
Retry-After (so a load balancer sends them elsewhere) and /readyz turns 503; once nothing is in
flight (or after --drain-timeout) uvicorn stops, the batchers finish what they hold, and the process
exits 0. A second signal stops at once.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from ..capabilities import BACKEND_CHOICES
from ..errors import BadInputError, MissingDependencyError
from .service import ServeSettings

log = logging.getLogger("facestyle.serve")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--engines", type=Path, default=None, help="artifact folder (default: $FACESTYLE_ENGINES or ./engines)")
    p.add_argument("--gallery", type=Path, help="gallery file (SQLite) for enroll / identify / people; created if absent")
    p.add_argument("--precision", default="fp32", help="embedding model variant (default fp32)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    p.add_argument("--upsample", type=int, default=0, help="detector upsampling, like dlib's (default 0)")
    p.add_argument("--token-file", type=Path, help="require 'Authorization: Bearer TOKEN' on /v1 and /metrics, "
                   "TOKEN being this file's content")
    p.add_argument("--max-body-mb", type=float, default=20.0, help="largest request body (default 20 MB): 413 beyond")
    p.add_argument("--max-batch", type=int, default=32, help="most face chips embedded in one batch (default 32)")
    p.add_argument("--max-delay-ms", type=float, default=5.0, help="how long a batch waits for more chips (default 5)")
    p.add_argument("--max-queue", type=int, default=256, help="chips waiting for the embedder before 503 (default 256)")
    p.add_argument("--workers", type=int, default=2, help="requests detecting faces at once (default 2)")
    p.add_argument("--stylize-queue", type=int, default=8, help="photos waiting to be stylised before 503 (default 8)")
    p.add_argument("--stylize-max-side", type=int, default=1600, help="photos are stylised at most this large (1600)")
    p.add_argument("--max-in-flight", type=int, default=512, help="requests served at once before 503 (default 512; "
                   "/healthz, /readyz and /metrics are never counted)")
    p.add_argument("--max-in-flight-per-client", type=int, default=64,
                   help="requests of one client address served at once before 503 (default 64)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a connection may take to send a request's headers before it is closed (default 10)")
    p.add_argument("--body-timeout", type=float, default=60.0,
                   help="seconds a request's body may take to arrive before 408 (default 60)")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds SIGTERM waits for requests in flight")
    p.add_argument("--source", action="append", default=[], metavar="SOURCE",
                   help="watch this video file, camera index (0, 1, ...) or URL (rtsp://...) from the start; repeat "
                        "for several (more: POST /v1/streams)")
    p.add_argument("--max-streams", type=int, default=8, help="streams watched at once before 429 (default 8)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    for name in ("max_batch", "max_queue", "workers", "stylize_queue", "max_in_flight", "max_in_flight_per_client",
                 "max_streams"):
        if getattr(args, name) < 1:
            raise BadInputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected at least 1")
    for name in ("header_timeout", "body_timeout"):
        if not getattr(args, name) > 0:
            raise BadInputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive number of seconds")
    if args.max_body_mb <= 0:
        raise BadInputError(f"--max-body-mb {args.max_body_mb}: expected a positive size")
    from ..manifest import default_engines_dir

    engines = Path(args.engines or default_engines_dir())
    if not engines.is_dir():
        raise BadInputError(f"--engines {engines}: no such folder (run `facestyle build` first)")
    return ServeSettings(engines=engines, gallery=args.gallery, precision=args.precision, backend=args.backend,
                         upsample=args.upsample, max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
                         max_queue=args.max_queue,
                         workers=args.workers, stylize_queue=args.stylize_queue, stylize_max_side=args.stylize_max_side)


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"--token-file {path}: cannot read it ({exc})") from None
    if len(token) < 8:
        raise BadInputError(f"--token-file {path}: the token must be at least 8 characters")
    return token


def serve(args: argparse.Namespace) -> int:
    """``facestyle serve``: build the app from the options and run it until SIGTERM / Ctrl-C."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise MissingDependencyError(f"`facestyle serve` needs the serve extra ({exc.name} is missing): "
                                     "pip install 'facestyle[serve]'") from None
    from .middleware import ServeState
    from .service import Service

    settings = settings_from_args(args)
    state = ServeState(read_token(args.token_file), int(args.max_body_mb * (1 << 20)), args.max_in_flight,
                       args.max_in_flight_per_client, args.body_timeout)
    logging.getLogger("facestyle").setLevel(args.log_level.upper())
    service = Service(settings)
    app = create_app(service, state, streams=_stream_hub(args, service))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                            timeout_graceful_shutdown=max(1, int(args.drain_timeout)), lifespan="on",
                            http=_header_timeout_protocol(args.header_timeout))
    server = _make_draining_server()(config, state, args.drain_timeout)
    server.run()
    return 0


def _stream_hub(args: argparse.Namespace, service):
    """The streams of --source: each checked now (a missing file fails before the server starts)."""
    from ..cli.streams import _check_source
    from .streams import StreamHub

    if len(args.source) > args.max_streams:
        raise BadInputError(f"--source: {len(args.source)} sources, more than --max-streams {args.max_streams}")
    for source in args.source:
        _check_source(source)
    return StreamHub(service, args.max_streams, args.source)


def _header_timeout_protocol(seconds: float):
    """uvicorn's HTTP protocol, closing a connection whose request headers are not in within ``seconds``.

    uvicorn times out idle keep-alive connections, but any byte received cancels that timer and nothing
    bounds the time headers take, so a client sending one byte a second would hold its connection forever.
    Here a timer checks every ``seconds``: a connection with no request started since its last check (and
    none in progress) is closed, so headers get at most twice ``seconds``."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base  # what uvicorn's "auto" picks
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class HeaderTimeout(Base):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(seconds, self._check_headers, self.cycle)

        def _check_headers(self, cycle_before) -> None:
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and self.cycle is cycle_before:
                self.transport.close()  # the client's headers never came: nothing to answer
                return
            self._header_timer = self.loop.call_later(seconds, self._check_headers, self.cycle)

        def connection_lost(self, exc) -> None:
            self._header_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeout


def _make_draining_server():
    import uvicorn

    class Draining(uvicorn.Server):
        """uvicorn's server, with a first SIGTERM / SIGINT that drains before it stops."""

        def __init__(self, config, state, drain_timeout: float):
            super().__init__(config)
            self.state, self.drain_timeout = state, drain_timeout
            self._drain_started: float | None = None

        def handle_exit(self, sig, frame) -> None:
            if self._drain_started is None:
                self._drain_started = time.monotonic()
                self.state.draining = True
                print(f"facestyle serve: signal {sig}: draining ({self.state.in_flight} request(s) in flight)",
                      flush=True)
            else:
                self.should_exit = self.force_exit = True

        async def on_tick(self, counter: int) -> bool:
            if self._drain_started is not None and not self.should_exit:
                waited = time.monotonic() - self._drain_started
                if self.state.in_flight == 0 or waited > self.drain_timeout:
                    self.should_exit = True
            return await super().on_tick(counter)

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            for server in getattr(self, "servers", []):
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    print(f"facestyle serve: listening on http://{host}:{port}", flush=True)

    return Draining
