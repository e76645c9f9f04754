"""Watching a camera or video for faces: detection, identification against a gallery, annotation.

>>> watch("door.mp4", analyzer, gallery, out="annotated.mp4", json_lines=sys.stdout)

Frames come from ``facestyle.video`` (OpenCV, imported only when a stream is opened). Each analysed
frame's faces are embedded in one batch and searched in the gallery; the annotated video shows each
face's box in the colour of what is known about it, with its name and distance.
"""

from __future__ import annotations

import json
import time

import numpy as np

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
    """A copy of an RGB frame with each face's box and label, and the processing rate, drawn on it."""
    cv2 = opencv()
    canvas = np.ascontiguousarray(frame).copy()
    scale = max(0.4, min(canvas.shape[:2]) / 600)
    thickness = max(1, round(2 * scale))
    for face in faces:
        left, top, right, bottom = face["box"]
        cv2.rectangle(canvas, (left, top), (right, bottom), _colour(face), thickness)
        label = _label(face)
        if label:
            _put_label(canvas, label, left, top, bottom, _colour(face), scale, thickness)
    if fps is not None:
        _put_label(canvas, f"{fps:.1f} fps", 0, 0, 0, (255, 255, 255), scale, thickness)  # top left
    return canvas


def _put_label(canvas, text: str, left: int, top: int, bottom: int, colour, scale: float, thickness: int) -> None:
    """Dark text on a box of ``colour``, just above ``top`` (below ``bottom`` where there is no room above)."""
    cv2 = opencv()
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    box_height = height + baseline + 4
    y0 = top - box_height if top - box_height >= 0 else bottom + 1
    cv2.rectangle(canvas, (left, y0), (left + width + 4, y0 + box_height), colour, cv2.FILLED)
    cv2.putText(canvas, text, (left + 2, y0 + height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)


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
