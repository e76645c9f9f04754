"""A small RTSP server for the network source tests, run by the system Python with GStreamer's RTSP server:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 [--image face.jpg]

It serves rtsp://127.0.0.1:PORT/test: a moving test pattern (or a still image, e.g. a photo with faces) as
H.264 at 15 frames per second, and prints ``serving rtsp://...`` on stdout once it listens. ``--frames
NAME=PATTERN`` (repeatable) also serves rtsp://127.0.0.1:PORT/NAME: numbered JPEG frames (``scene/%04d.jpg``)
looped at 15 frames per second at their own size, e.g. a face video. Debian packages:
gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-plugins-ugly (x264enc).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PATH = "/test"
NEEDED = ("videotestsrc", "imagefreeze", "multifilesrc", "jpegdec", "decodebin", "videoconvert", "videoscale", "videorate",
          "x264enc", "rtph264pay")
PACKAGES = "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
MISSING = 3  # the exit status when an element is missing: the tests skip
CAPS = "video/x-raw,width=320,height=240,framerate=15/1"
ENCODE = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 ! rtph264pay name=pay0 pt=96 config-interval=1"


def pipeline(image: str | None) -> str:
    if image:  # a photo shown still: decoded once, repeated at the frame rate
        source = f'filesrc location="{image}" ! decodebin ! videoconvert ! videoscale ! imagefreeze'
    else:
        source = "videotestsrc is-live=true pattern=ball"
    return f"( {source} ! videoconvert ! videoscale ! videorate ! {CAPS} ! {ENCODE} )"


def frames_pipeline(pattern: str) -> str:
    """Numbered JPEG frames, from the first again after the last, at 15 frames per second."""
    source = f'multifilesrc location="{pattern}" loop=true caps=image/jpeg,framerate=15/1 ! jpegdec'
    return f"( {source} ! videoconvert ! video/x-raw,format=I420 ! {ENCODE} )"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--image", help="serve this image instead of a test pattern")
    parser.add_argument("--frames", action="append", default=[], metavar="NAME=PATTERN",
                        help="also serve /NAME: numbered JPEG frames (PATTERN as scene/%%04d.jpg), looped")
    args = parser.parse_args()
    Gst.init(None)
    missing = [name for name in NEEDED if Gst.ElementFactory.find(name) is None]
    if missing:  # the pipeline would fail only when a client connects: say so now
        print(f"missing GStreamer elements: {', '.join(missing)} (apt-get install {PACKAGES})", file=sys.stderr)
        return MISSING
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args.image))
    factory.set_shared(True)  # one encoder for every client
    server.get_mount_points().add_factory(PATH, factory)
    for name, pattern in (spec.split("=", 1) for spec in args.frames):
        looped = GstRtspServer.RTSPMediaFactory()
        looped.set_launch(frames_pipeline(pattern))
        looped.set_shared(True)
        server.get_mount_points().add_factory(f"/{name}", looped)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    print(f"serving rtsp://127.0.0.1:{server.get_bound_port()}{PATH}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
