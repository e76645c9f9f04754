"""POST /v1/enroll, POST /v1/identify, GET /v1/people, DELETE /v1/people/{name}."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from ...errors import BadInputError
from ...face.gallery.names import check_name
from .. import inputs
from . import ERRORS, body, service_of

router = APIRouter(prefix="/v1", tags=["gallery"], responses=ERRORS)
NOT_FOUND = {404: {"description": "unknown person, or no gallery on this server"}}


@router.post("/enroll", summary="enrol a person from photos that each show one face (one is enough)",
             openapi_extra=body({"name": "text", "images": "images"}, ("name", "images")), responses=NOT_FOUND)
async def enroll(request: Request,
                 allow_poor: bool = Query(False, description="enrol faces of poor quality too")) -> dict:
    fields = await inputs.read_fields(request)
    try:
        name = check_name(inputs.text(fields, "name"))  # before any photo is decoded
    except BadInputError as error:
        error.input = "name"
        raise
    photos = inputs.photos(fields, "images", many=True)
    return await run_in_threadpool(service_of(request).enroll, name, photos, allow_poor)


@router.post("/identify", summary="name every face of an image from the gallery, or say 'unknown'",
             openapi_extra=body({"image": "image"}, ("image",)), responses=NOT_FOUND)
async def identify(request: Request,
                   top_k: int = Query(3, ge=1, le=100, description="nearest people listed per face"),
                   threshold: float | None = Query(None, gt=0, le=4, allow_inf_nan=False)) -> dict:
    photo = inputs.photos(await inputs.read_fields(request), "image")[0]
    return await run_in_threadpool(service_of(request).identify, photo, top_k, threshold)


@router.get("/people", summary="the enrolled people and their photo counts", responses=NOT_FOUND)
async def people(request: Request) -> dict:
    return {"people": await run_in_threadpool(service_of(request).people)}


@router.delete("/people/{name:path}", summary="forget a person", responses=NOT_FOUND)
async def remove(request: Request, name: str) -> dict:
    # ':path': a name enrolled before names were checked may hold '/', sent %2F-encoded (decoded before routing)
    return await run_in_threadpool(service_of(request).remove, name)
