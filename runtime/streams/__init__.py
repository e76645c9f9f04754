"""Tracked faces in camera streams: several sources at once, ids across frames, names per track.

>>> from facestyle.streams import watch
>>> for item in watch(["door.mp4", "rtsp://cam/stream"], analyzer, gallery):
...     print(item.to_json())

Sources (:mod:`.sources`), what the detector looks at (:mod:`.regions`), the tracker (:mod:`.tracker`),
identities per track from quality-weighted evidence (:mod:`.identities`), results and events (:mod:`.events`), the
loop (:mod:`.watch`), JSON lines (:mod:`.sinks`) and boxes drawn on frames (:mod:`.annotate`). OpenCV is imported
only when a source is opened or a frame drawn, SciPy only when a tracker first associates detections.
"""

from .events import EVENTS, Event, FrameResult, TrackedFace
from .sinks import JsonLines
from .sources import Sources
from .tracker import Tracker
from .watch import StreamWatch, watch

__all__ = ["EVENTS", "Event", "FrameResult", "JsonLines", "Sources", "StreamWatch", "TrackedFace", "Tracker", "watch"]
