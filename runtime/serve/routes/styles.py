"""GET /v1/styles, POST /v1/stylize."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .. import inputs
from . import ERRORS, body, service_of

router = APIRouter(prefix="/v1", tags=["styles"], responses=ERRORS)
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}


def output_format(accept: str) -> str:
    """PNG when the client prefers image/png, else JPEG (Accept order and q values respected)."""
    best, best_q = "image/jpeg", -1.0
    for part in accept.split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media in FORMATS and q > best_q:
            best, best_q = media, q
    return best


@router.get("/styles", summary="the styles this server stylises with (name, variant, precisions, training card)")
async def styles(request: Request) -> dict:
    return {"styles": await run_in_threadpool(service_of(request).styles)}


@router.post("/stylize", summary="the image in a style: JPEG, or PNG when Accept asks for image/png",
             openapi_extra=body({"image": "image"}, ("image",)), response_class=Response,
             responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                        404: {"description": "unknown style"}})
async def stylize(request: Request, style: str = Query(..., min_length=1, description="see GET /v1/styles"),
                  strength: float = Query(1.0, ge=0, le=1, allow_inf_nan=False, description="0: the photo, 1: full style"),
                  max_side: int | None = Query(None, ge=16, le=8000, description="downscale first (capped by the server)"),
                  stroke_scale: float = Query(1.0, ge=0.25, le=4, allow_inf_nan=False, description="2: strokes twice as large"),
                  preserve_colour: bool = Query(False, description="the photo's colours, the painting's strokes"),
                  keep_faces: bool = Query(False, description="faces stylised gently (needs the face models)")):
    photo = inputs.photos(await inputs.read_fields(request), "image")[0]
    media = output_format(request.headers.get("accept", ""))
    data = await run_in_threadpool(service_of(request).stylize, photo, style, strength, max_side, FORMATS[media],
                                   stroke_scale=stroke_scale, preserve_colour=preserve_colour, keep_faces=keep_faces)
    return Response(data, media_type=media, headers={"X-Style": style})
