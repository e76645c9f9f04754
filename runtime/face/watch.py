"""Watching one camera or video for faces frame by frame: detection, identification against a gallery, annotation.

>>> watch("door.mp4", analyzer, gallery, out="annotated.mp4", json_lines=sys.stdout)

Every analysed frame is detected and all its faces embedded. ``facestyle.streams`` (what ``facestyle watch``
runs) tracks the faces instead, over several sources at once, embedding a face only when its track is new, its
face larger, or its embedding stale; :func:`annotate` draws for both.

Frames come from ``facestyle.video`` (OpenCV, imported only when a stream is opened). Each analysed
frame's faces are embedded in one batch and searched in the gallery; the annotated video shows each
face's box in the colour of what is known about it, with its name and distance.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ..labels import place_labels
from ..video import Frame, VideoOutput, check_count, open_source, opencv
from .gallery import UNKNOWN, identify_photo

KNOWN_COLOUR = (40, 220, 40)  # RGB: an enrolled person
UNKNOWN_COLOUR = (240, 60, 40)  # a face beyond the threshold
PLAIN_COLOUR = (250, 200, 0)  # a face with no gallery to ask


def _analyse(frame: np.ndarray, analyzer, gallery, threshold: float | None) -> list[dict]:
    """Boxes, and with a gallery identities: every face of the frame embedded and searched in one batch."""
    if gallery is None:
        detections = analyzer.detector.detect(frame, upsample=analyzer.upsample)  # no names wanted: no embedding
        return [{"box": [int(v) for v in box], "identity": None, "distance": None} for box in detections.boxes]
    return [
        {"box": face["box"], "identity": face["identity"],
         "distance": face["matches"][0]["distance"] if face["matches"] else None}
        for face in identify_photo(gallery, analyzer, frame, threshold, top_k=1).to_json()["faces"]
    ]


def _label(face: dict) -> str | None:
    if face["identity"] is None:
        return None
    if face["distance"] is None:
        return face["identity"]
    return f"{face['identity']} {face['distance']:.2f}"


def _colour(face: dict) -> tuple[int, int, int]:
    if face["identity"] is None:
        return PLAIN_COLOUR
    return UNKNOWN_COLOUR if face["identity"] == UNKNOWN else KNOWN_COLOUR


def annotate(frame: np.ndarray, faces: list[dict], fps: float | None) -> np.ndarray:
    """A copy of an RGB frame with each face's box and label, and the processing rate, drawn on it. Labels sit
    beside their box, inside the frame, none over another (facestyle.labels.place_labels)."""
    cv2 = opencv()
    canvas = np.ascontiguousarray(frame).copy()
    height, width = canvas.shape[:2]
    scale = max(0.4, min(height, width) / 600)
    thickness = max(1, round(2 * scale))
    for face in faces:
        left, top, right, bottom = face["box"]
        cv2.rectangle(canvas, (left, top), (right, bottom), _colour(face), thickness)
    labelled = [face for face in faces if _label(face)]
    taken = []
    if fps is not None:  # top left, before the faces' labels, which then keep clear of it
        fps_text = f"{fps:.1f} fps"
        w, h = _label_size(fps_text, scale, thickness)
        taken = [(0, 0, min(w, width), min(h, height))]
        _put_label(canvas, fps_text, taken[0], (255, 255, 255), scale, thickness)
    sizes = [_label_size(_label(face), scale, thickness) for face in labelled]
    for face, rect in zip(labelled, place_labels([face["box"] for face in labelled], sizes, width, height, taken)):
        _put_label(canvas, _label(face), rect, _colour(face), scale, thickness)
    return canvas


def _label_size(text: str, scale: float, thickness: int) -> tuple[int, int]:
    """A label's (width, height): the text with a 2 px margin."""
    cv2 = opencv()
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return width + 4, height + baseline + 4


def _put_label(canvas, text: str, rect, colour, scale: float, thickness: int) -> None:
    """Dark text on a filled ``rect`` (x, y, width, height) of ``colour``."""
    cv2 = opencv()
    x, y, w, h = rect
    (_, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, cv2.FILLED)
    cv2.putText(canvas, text, (x + 2, y + text_height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)


def watch(source, analyzer, gallery=None, out=None, json_lines=None, threshold: float | None = None,
          max_frames: int | None = None, every: int = 1, progress=None) -> dict:
    """Find (and with a gallery, name) the faces of a camera or video stream.

    Every ``every``-th frame is analysed: detection, then all of its faces embedded in one batch and
    searched in ``gallery`` (name, or "unknown" beyond ``threshold``, default the model's). ``out``:
    write an annotated video (boxes, names and distances, the fps) of every frame read, the frames in
    between analysed ones showing the last faces found. ``json_lines``: a text file object that gets
    one line per analysed frame, ``{"frame", "time_s", "faces": [{"box", "identity", "distance"}],
    "fps"}`` (fps: frames handled per second so far, reading and writing included).

    A camera has no end: Ctrl-C stops the watch cleanly, the annotated video keeping what was seen.
    Returns ``{"source", "frames", "analysed", "faces", "fps", "interrupted"}``.
    """
    check_count("every", every, minimum=1)
    if max_frames is not None:
        check_count("max_frames", max_frames, minimum=1)
    with open_source(source) as stream:
        writer = VideoOutput(out, stream.fps, (stream.width, stream.height)) if out is not None else None
        try:
            summary = _watch_frames(stream, analyzer, gallery, writer, json_lines, threshold, max_frames, every, progress)
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            writer.commit()
            summary.update(codec=writer.codec, note=writer.note)
    return {"source": stream.name, **summary}


def _watch_frames(stream, analyzer, gallery, writer, json_lines, threshold, max_frames, every, progress) -> dict:
    started = time.perf_counter()
    frames = analysed = faces_seen = 0
    faces, fps, interrupted = [], None, False
    try:
        for frame in stream:
            if frame.index % every == 0:
                faces = _analyse(frame.pixels, analyzer, gallery, threshold)
                analysed += 1
                faces_seen += len(faces)
            frames += 1
            fps = frames / max(time.perf_counter() - started, 1e-9)
            if writer is not None:
                writer.write(annotate(frame.pixels, faces, fps))
            if json_lines is not None and frame.index % every == 0:
                _write_json_line(json_lines, frame, faces, fps)
            if progress is not None:
                progress.update(postfix=f"{len(faces)} face(s) {fps:.1f} fps")
            if frames == max_frames:
                break  # checked after the frame, not before the next: a camera would block on one more read
    except KeyboardInterrupt:
        interrupted = True  # the normal way to stop a camera: finish the outputs with what was seen
    elapsed = time.perf_counter() - started
    return {"frames": frames, "analysed": analysed, "faces": faces_seen,
            "fps": round(frames / elapsed, 3) if frames else 0.0, "interrupted": interrupted}


def _write_json_line(stream, frame: Frame, faces: list[dict], fps: float) -> None:
    record = {"frame": frame.index, "time_s": round(frame.time_s, 6), "faces": faces, "fps": round(fps, 3)}
    stream.write(json.dumps(record) + "\n")
    stream.flush()  # a reader following a live camera sees each frame as it is done
