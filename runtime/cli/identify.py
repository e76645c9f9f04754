"""``facestyle identify``'s handler: every input identified (a failing one reported in its place), a text line per
photo that says what was found, and ``--annotate`` (boxes and names drawn on the photo).

Registered by the gallery command module; only argparse-level code runs at import time.
"""

from __future__ import annotations

import argparse
import json

from ..errors import BadInputError
from .common import open_gallery
from .io import NO_FACE_HINT, check_output, expand_inputs, per_input, report_errors


def describe(item: dict) -> str:
    """One text line: '2 faces: ada (0.312), unknown (0.702)', '1 face, gallery empty: unknown', 'no face found'."""
    faces = item["faces"]
    if not faces:
        return f"{item['file']}: {NO_FACE_HINT}"
    count = f"{len(faces)} face{'s' if len(faces) != 1 else ''}"
    if all(not f["matches"] for f in faces):
        return f"{item['file']}: {count}, gallery empty: {', '.join(f['identity'] for f in faces)}"
    names = ", ".join(f"{f['identity']} ({f['matches'][0]['distance']:.3f})" if f["matches"] else f["identity"]
                      for f in faces)
    return f"{item['file']}: {count}: {names}"


def _annotate(path: str, faces: list[dict], out) -> None:
    from ..images import load_image, save_image
    from ..streams.annotate import annotate

    drawn = [{"box": f["box"], "identity": f["identity"],
              "distance": f["matches"][0]["distance"] if f["matches"] else None} for f in faces]
    save_image(annotate(load_image(path), drawn, fps=None), out)


def identify_command(args: argparse.Namespace) -> int:
    from ..face.analyzer import GIVEN_ON_COMMAND_LINE

    files = expand_inputs(args.images)
    annotate_to = getattr(args, "annotate", None)
    if annotate_to is not None:
        from ..images import image_format_for
        from ..video import opencv

        opencv()  # the drawing needs the video extra: say so before any work
        if len(files) != 1:
            raise BadInputError(f"--annotate {annotate_to}: give exactly one photo to annotate, got {len(files)}")
        image_format_for(annotate_to)
        check_output(annotate_to, files, getattr(args, "overwrite", False))
    analyzer, gallery = open_gallery(args, create=False, write=False)

    def one(path: str) -> dict:  # timings in ms: decode, detect, landmarks, align, embed, search
        found = analyzer.identify(gallery, path, args.top_k, args.threshold, GIVEN_ON_COMMAND_LINE)
        return {"file": path, **found.to_json()}

    try:
        out = per_input(files, one, "identifying")
    finally:
        gallery.close()
    if annotate_to is not None and "faces" in out[0]:
        _annotate(files[0], out[0]["faces"], annotate_to)
    if args.json:
        print(json.dumps(out))
    else:
        for item in out:
            if "faces" in item:
                print(describe(item))
    return report_errors("identify", out)  # each failed input also one line on stderr, in either mode
