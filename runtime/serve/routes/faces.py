"""POST /v1/embed, POST /v1/verify."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from .. import inputs
from . import ERRORS, body, service_of

router = APIRouter(prefix="/v1", tags=["faces"], responses=ERRORS)


@router.post("/embed", summary="every face of each image: box, score, 5 landmarks, 128-d embedding",
             openapi_extra=body({"images": "images"}, ("images",)))
async def embed(request: Request, aligned: bool = Query(
        False, description="images are aligned 150x150 face chips: embed them as they are")) -> dict:
    photos = inputs.photos(await inputs.read_fields(request), "images", many=True)
    service = service_of(request)
    return {"images": await run_in_threadpool(service.embed_chips if aligned else service.embed, photos)}


@router.post("/verify", summary="are the largest faces of images a and b the same person?",
             openapi_extra=body({"a": "image", "b": "image"}, ("a", "b")))
async def verify(request: Request, threshold: float | None = Query(
        None, gt=0, le=4, allow_inf_nan=False, description="distance threshold (default: the model manifest's)")) -> dict:
    fields = await inputs.read_fields(request)
    a, b = inputs.photos(fields, "a")[0], inputs.photos(fields, "b")[0]
    return await run_in_threadpool(service_of(request).verify, a, b, threshold)
