"""GET /v1/unknowns, GET /v1/unknowns/{id}/chip.jpg, POST /v1/unknowns/{id}/name: faces nobody has named yet.

The clusters are those of ``facestyle gallery unknowns`` (:mod:`facestyle.face.gallery.unknowns`), cut at the
0.9 x the embedding model's pair threshold; naming one enrols its best faces, as ``facestyle gallery name`` does.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...errors import BadInputError
from ...face.gallery import unknowns
from ...face.gallery.names import check_name
from .. import inputs
from ..errors import NotFoundError
from . import ERRORS, body, service_of

router = APIRouter(prefix="/v1", tags=["unknowns"], responses=ERRORS)
NOT_FOUND = {404: {"description": "no such cluster now, or no gallery on this server"}}


def _gallery_and_cut(request: Request):
    service = service_of(request)
    gallery = service._gallery()
    return gallery, unknowns.default_cut(service.analyzer.threshold)


def _listed(request: Request) -> list[dict]:
    gallery, cut = _gallery_and_cut(request)
    return [{"id": c.id, "count": c.tracks, "first_seen": round(c.first_seen, 3), "last_seen": round(c.last_seen, 3),
             "chip": f"/v1/unknowns/{c.id}/chip.jpg"} for c in unknowns.clusters(gallery, cut)]


def _found(request: Request, cluster: str):
    gallery, cut = _gallery_and_cut(request)
    try:
        return gallery, cut, unknowns.find(gallery, cut, cluster)
    except BadInputError as error:
        raise NotFoundError(str(error), "cluster") from None


def _chip(request: Request, cluster: str) -> bytes:
    gallery, _, found = _found(request, cluster)
    best = found.faces[0].id
    return unknowns.chips(gallery.store, [best])[best]


def _name(request: Request, cluster: str, name: str, add: bool) -> dict:
    gallery, cut, _ = _found(request, cluster)
    return unknowns.name_cluster(gallery, cut, cluster, name, add=add)


@router.get("/unknowns", summary="the faces of tracks that ended unknown, grouped into suggested people",
            responses=NOT_FOUND)
async def listed(request: Request) -> dict:
    return {"clusters": await run_in_threadpool(_listed, request)}


@router.get("/unknowns/{cluster}/chip.jpg", summary="the best face of a cluster (JPEG)", response_class=Response,
            responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}}})
async def chip(request: Request, cluster: str) -> Response:
    return Response(await run_in_threadpool(_chip, request, cluster), media_type="image/jpeg")


@router.post("/unknowns/{cluster}/name", summary="enrol a cluster's best faces under a name (all or nothing)",
             openapi_extra=body({"name": "text"}, ("name",)), responses=NOT_FOUND)
async def name(request: Request, cluster: str,
               add: bool = Query(False, description="add the faces to a person already enrolled")) -> dict:
    fields = await inputs.read_fields(request)
    try:
        person = check_name(inputs.text(fields, "name"))
    except BadInputError as error:
        error.input = "name"
        raise
    return await run_in_threadpool(_name, request, cluster, person, add)
