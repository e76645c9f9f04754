"""The endpoints under /v1, by group: faces (embed, verify), gallery (enroll, identify, people), styles."""

from __future__ import annotations

ERRORS = {
    400: {"description": "not an image, or no face where one is needed"},
    401: {"description": "missing or wrong token (servers started with --token-file)"},
    413: {"description": "request body over --max-body-mb"},
    422: {"description": "malformed request"},
    503: {"description": "overloaded or shutting down; see Retry-After"},
}


def body(fields: dict[str, str], required: tuple[str, ...]) -> dict:
    """``openapi_extra`` for a body of image and text fields, as multipart files or as base64 JSON.

    fields: name -> "image", "images" (one or more) or "text".
    """
    multipart, json_ = {}, {}
    for name, kind in fields.items():
        if kind == "text":
            multipart[name] = json_[name] = {"type": "string", "minLength": 1}
        elif kind == "image":
            multipart[name] = {"type": "string", "format": "binary"}
            json_[name] = {"type": "string", "contentEncoding": "base64", "description": "base64 (or a data URL)"}
        else:
            multipart[name] = {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
            json_[name] = {"type": "array", "minItems": 1,
                           "items": {"type": "string", "contentEncoding": "base64", "description": "base64 (or a data URL)"}}
    schema = lambda props: {"type": "object", "properties": props, "required": list(required)}  # noqa: E731
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": schema(multipart)}, "application/json": {"schema": schema(json_)}}}}


def service_of(request):
    return request.app.state.service
