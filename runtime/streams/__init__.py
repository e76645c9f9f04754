"""Tracked faces in camera streams: several sources at once, ids across frames, names per track.

>>> from facestyle.streams import watch
>>> for item in watch(["door.mp4", "rtsp://cam/stream"], analyzer, gallery):
...     print(item.to_json())

Sources (:mod:`.sources`), the tracker (:mod:`.tracker`), identities per track (:mod:`.identities`), results
and events (:mod:`.events`), the loop (:mod:`.watch`) and JSON lines (:mod:`.sinks`). OpenCV is imported only
when a source is opened, SciPy only when a tracker first associates detections.
"""

from .events import EVENTS, Event, FrameResult, TrackedFace
from .sinks import JsonLines
from .sources import Sources
from .tracker import Tracker
from .watch import StreamWatch, watch

__all__ = ["EVENTS", "Event", "FrameResult", "JsonLines", "Sources", "StreamWatch", "TrackedFace", "Tracker", "watch"]
