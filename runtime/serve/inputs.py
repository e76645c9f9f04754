"""Request bodies -> photos and fields: multipart files, or base64 strings in a JSON object.

Both forms carry the same fields: ``images`` (one or more) for embed and enroll, ``a`` and ``b`` for
verify, ``image`` for identify and stylize, ``name`` for enroll. A base64 field may be a data URL.
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import MalformedRequestError
from .service import Photo

MAX_FILES = 64  # images in one request


async def read_fields(request) -> dict[str, list]:
    """{field: [values]}: bytes for uploaded files (with their names), str for text and base64 fields."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data" or content_type == "application/x-www-form-urlencoded":
        from starlette.exceptions import HTTPException

        try:
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES + 16)
        except HTTPException as error:
            raise MalformedRequestError(f"request body: malformed form data ({error.detail})") from None
        fields: dict[str, list] = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):  # an UploadFile
                fields.setdefault(key, []).append((await value.read(), value.filename or key))
            else:
                fields.setdefault(key, []).append(value)
        await form.close()
        return fields
    if content_type == "application/json":
        body = await request.body()
        try:
            data = json.loads(body)
        except RecursionError:  # e.g. 100,000 nested arrays: deeper than the parser goes
            raise MalformedRequestError("request body: JSON nested too deeply; expected an object of fields") from None
        except ValueError as error:  # not JSON, not UTF-8, or an integer of more than 4,300 digits
            raise MalformedRequestError(f"request body: not valid JSON ({str(error).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise MalformedRequestError("request body: expected a JSON object of fields")
        return {_unicode(k, "field name"): (v if isinstance(v, list) else [v]) for k, v in data.items()}
    raise MalformedRequestError(
        f"request body: content type {content_type or 'none'!r}; expected multipart/form-data or application/json",
        "content-type")


def _unicode(value: str, what: str) -> str:
    """``value`` when it is valid Unicode; JSON's ``\\ud800`` escapes allow lone surrogates, which no
    text can hold (nor a gallery store, nor a JSON answer repeat)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedRequestError(f"{what} {ascii(value)[:60]}: holds a lone surrogate; expected valid Unicode text",
                                    what) from None
    return value


def _decode_base64(text: str, field: str) -> bytes:
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequestError(f"{field}: not an uploaded file or valid base64", field) from None


def photos(fields: dict[str, list], field: str, many: bool = False) -> list[Photo]:
    values = fields.get(field, [])
    if not values:
        raise MalformedRequestError(f"{field}: missing (send it as a file or as base64)", field)
    if not many and len(values) > 1:
        raise MalformedRequestError(f"{field}: expected one image, got {len(values)}", field)
    if len(values) > MAX_FILES:
        raise MalformedRequestError(f"{field}: {len(values)} images, at most {MAX_FILES} per request", field)
    out = []
    for i, value in enumerate(values):
        label = field if not many else f"{field}[{i}]"
        if isinstance(value, tuple):
            data, filename = value
            out.append(Photo(data, filename or label))
        elif isinstance(value, str):
            out.append(Photo(_decode_base64(value, label), label))
        else:
            raise MalformedRequestError(f"{label}: expected a file or a base64 string", label)
    return out


def text(fields: dict[str, list], field: str) -> str:
    values = fields.get(field, [])
    if len(values) != 1 or not isinstance(values[0], str):
        raise MalformedRequestError(f"{field}: expected one text value", field)
    return values[0]  # a name is checked by the gallery's name rule (lone surrogates included)
