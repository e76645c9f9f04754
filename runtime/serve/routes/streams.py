"""Cameras: POST/GET /v1/streams, DELETE /v1/streams/{id}, each stream's frame (JPEG, MJPEG), GET /v1/events (SSE).

The long answers (MJPEG, events) end when the client leaves, when their stream is stopped, or when the server
drains, so that a viewer never holds up a shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import inputs
from ..errors import MalformedRequestError, UnavailableError
from ..streams import RECENT_EVENTS, Published
from . import ERRORS

router = APIRouter(prefix="/v1", tags=["streams"], responses=ERRORS)
NOT_FOUND = {404: {"description": "no stream of that id"}}
NO_STORE = {"Cache-Control": "no-store"}
MJPEG_MAX_FPS = 15.0
RESEND_S = 1.0  # an MJPEG viewer gets the last frame again after this long without a new one
POLL_S = 0.5  # how often a long answer checks whether the server drains
KEEPALIVE_S = 15.0  # a comment line on a quiet event stream, so proxies keep it open
BOUNDARY = "frame"
OPTION_SCHEMA = {"every": "integer", "detect_every": "integer", "min_face": "integer", "min_quality": "number",
                 "naming": "string", "threshold": "number", "realtime": "boolean", "reembed_every": "integer",
                 "max_age": "integer"}
START_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["source"],
    "properties": {"source": {"type": "string", "minLength": 1,
                              "description": "a video file on the server, a camera index (0, 1, ...) or a URL"},
                   "name": {"type": "string", "minLength": 1, "maxLength": 64, "description": "shown on the page"},
                   **{k: {"type": t, "description": f"as `facestyle watch --{k.replace('_', '-')}`"}
                      for k, t in OPTION_SCHEMA.items()}}}}}}}


def hub_of(request: Request):
    return request.app.state.streams


def _closing(request: Request) -> bool:
    return request.app.state.serve.draining


@router.post("/streams", summary="start watching a video file, a camera or a URL", status_code=201,
             openapi_extra=START_BODY, responses={429: {"description": "--max-streams streams are running"}})
async def start(request: Request):
    fields = await inputs.read_fields(request)
    source = inputs.text(fields, "source")
    name = fields["name"][0] if len(fields.get("name", [])) == 1 else None
    options = {k: v[0] if len(v) == 1 else v for k, v in fields.items() if k not in ("source", "name")}
    stream = await run_in_threadpool(hub_of(request).start, source, name, options)
    return JSONResponse(stream.to_json(), status_code=201)


@router.get("/streams", summary="the streams: state, frames, faces, reconnects")
async def streams(request: Request) -> dict:
    hub = hub_of(request)
    return {"streams": hub.list(), "max_streams": hub.max_streams}


@router.delete("/streams/{stream_id}", summary="stop watching a stream", responses=NOT_FOUND)
async def stop(request: Request, stream_id: str) -> dict:
    return hub_of(request).stop(stream_id)


@router.get("/streams/{stream_id}/frame.jpg", summary="the stream's newest frame, faces drawn", response_class=Response,
            responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}}, 503: {"description": "no frame yet"}})
async def frame(request: Request, stream_id: str):
    stream = hub_of(request).get(stream_id)
    data = await run_in_threadpool(stream.jpeg)
    if data is None:
        why = f": {stream.error}" if stream.error else f" ({stream.state})"
        raise UnavailableError(f"stream {stream.id} ({stream.name}): no frame yet{why}", "id")
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.get("/streams/{stream_id}/mjpeg", summary="the stream's frames as MJPEG (multipart/x-mixed-replace)",
            response_class=StreamingResponse, responses=NOT_FOUND)
async def mjpeg(request: Request, stream_id: str,
                fps: float = Query(5.0, gt=0, le=MJPEG_MAX_FPS, description="most frames a second sent")):
    stream = hub_of(request).get(stream_id)
    return StreamingResponse(_mjpeg_parts(request, stream, fps), headers=NO_STORE,
                             media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")


async def _mjpeg_parts(request: Request, stream, fps: float):
    """Each new frame, at most ``fps`` a second, and the last one again after RESEND_S without one; ends when
    the stream is stopped or the server drains."""
    hub, shown, sent_at = hub_of(request), 0, 0.0
    while hub.running(stream) and not _closing(request):
        number = stream.frame_number
        if number and (number != shown or time.monotonic() - sent_at >= RESEND_S):
            data = await run_in_threadpool(stream.jpeg)
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                   + data + b"\r\n")
            shown, sent_at = number, time.monotonic()
        await asyncio.sleep(1.0 / fps)


@router.get("/events", summary="the streams' events as Server-Sent Events (event: <kind>, data: JSON)",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def events(request: Request,
                 replay: int = Query(20, ge=0, le=RECENT_EVENTS, description="recent events sent first"),
                 last_event_id: str | None = Header(None, description="resume after this event (what EventSource "
                                                                       "sends when it reconnects)")):
    after = None
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise MalformedRequestError(f"Last-Event-ID {last_event_id[:40]!r}: expected an event id", "last-event-id")
        after = int(last_event_id)
    return StreamingResponse(_event_messages(request, after, replay), media_type="text/event-stream",
                             headers={**NO_STORE, "X-Accel-Buffering": "no"})


def _message(item: Published) -> str:
    return f"id: {item.id}\nevent: {item.kind}\ndata: {json.dumps(item.data)}\n\n"


async def _event_messages(request: Request, after: int | None, replay: int):
    """The backlog, then each event as published; a client that fell behind is told how many it lost first."""
    hub = hub_of(request)
    subscriber, backlog = hub.subscribe(after, replay)
    getter, quiet = None, 0.0
    try:
        yield "retry: 2000\n\n" + "".join(_message(item) for item in backlog)
        while not _closing(request):
            getter = getter or asyncio.ensure_future(subscriber.queue.get())
            done, _ = await asyncio.wait({getter}, timeout=POLL_S)
            if not done:
                quiet += POLL_S
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                continue
            item, getter, quiet = getter.result(), None, 0.0
            dropped = subscriber.take_dropped()
            lost = f"event: dropped\ndata: {json.dumps({'dropped': dropped})}\n\n" if dropped else ""
            yield lost + _message(item)
    finally:
        if getter is not None:
            getter.cancel()
        hub.unsubscribe(subscriber)

