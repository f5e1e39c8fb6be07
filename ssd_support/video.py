"""Annotated videos that browsers and Jupyter play, and the per-frame detections beside them (detect.py).

Two encoders, chosen by what is installed:

- H.264 in MP4 through PyAV (``pip install av``; its wheels bundle FFmpeg with libx264), where it is installed:
  plays everywhere (every browser, Jupyter, phones, QuickTime);
- VP9 in WebM through OpenCV's own wheel (opencv-python-headless bundles FFmpeg with libvpx; no new
  dependency) otherwise: plays in Chrome, Firefox, Edge, Safari 14.1+ and Jupyter (an ``<video>`` tag).

OpenCV's wheels have no H.264 encoder (they build FFmpeg without libx264), and its default mp4v (MPEG-4 Part 2) is
played by no browser, hence the two routes. Both write 4:2:0 video, whose sides must be even: an odd width or
height is padded by one pixel, a copy of the last column / row (the frame keeps its pixel coordinates; the
detections' boxes stay where they are). A video is written under a temporary name and renamed when complete, so
an interrupted run leaves no half-written file under the final name.

Leaf module: NumPy; OpenCV and PyAV imported where used; no project imports.
"""

import contextlib
import json
import os
import sys
import tempfile
from fractions import Fraction

import numpy as np

CODECS = ("auto", "h264", "vp9")
# The frame rate a video is written at when its source gives none that can be believed and no timestamps say it.
DEFAULT_FPS = 25.0
# OpenCV reports 1000 fps (the container's millisecond time base) for many browser recordings (MediaRecorder WebM,
# which has no frame rate), and 0 or NaN for some streams: a rate above this is not a frame rate.
MAX_PLAUSIBLE_FPS = 240.0
# Frames whose timestamps are read to estimate the rate (a second or two of video).
PROBE_FRAMES = 48
DESCRIPTIONS = {"h264": "H.264 MP4 (PyAV)", "vp9": "VP9 WebM (OpenCV)"}
EXTENSIONS = {"h264": ".mp4", "vp9": ".webm"}


def require_cv2():
    """Import OpenCV.

    :return: the cv2 module
    :raises ImportError: one line saying what to install
    """
    try:
        import cv2
    except ImportError:
        raise ImportError("videos and --webcam need OpenCV: pip install opencv-python-headless (or "
                          "opencv-python, for the --webcam window)") from None
    return cv2


def pyav_h264_available():
    """True when PyAV is installed with an H.264 encoder (libx264, which its wheels bundle)."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


def choose_codec(codec="auto"):
    """The codec a video will be written with: "h264" where PyAV has it, else "vp9" (OpenCV's wheel).

    :param codec: "auto", "h264" or "vp9"
    :return: "h264" or "vp9"
    :raises ValueError: for "h264" without PyAV, or an unknown name
    """
    if codec not in CODECS:
        raise ValueError(f"video codec {codec!r}: expected one of {', '.join(CODECS)}")
    if codec == "auto":
        return "h264" if pyav_h264_available() else "vp9"
    if codec == "h264" and not pyav_h264_available():
        raise ValueError("H.264 video needs PyAV: pip install av")
    return codec


def fps_from_timestamps(timestamps_ms):
    """The frame rate that frame timestamps say: 1000 / the median interval between consecutive frames (the
    median, so that a dropped or repeated frame does not move it).

    :param timestamps_ms: the frames' presentation times in milliseconds, in decoding order
    :return: frames per second, or None when fewer than two frames have increasing times
    """
    intervals = np.diff(np.asarray([t for t in timestamps_ms if np.isfinite(t)], dtype=np.float64))
    intervals = intervals[intervals > 0]
    if not len(intervals):
        return None
    return float(1000.0 / np.median(intervals))


def plausible_fps(fps):
    """True for a frame rate that can be believed: finite, above 0 and at most MAX_PLAUSIBLE_FPS."""
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(fps)) and 0 < fps <= MAX_PLAUSIBLE_FPS


def frame_rate(reported, source=None, probe_frames=PROBE_FRAMES):
    """The frame rate to write an annotated video at, so that it plays at the real speed.

    The rate the capture reports (CAP_PROP_FPS) where it can be believed; else, for a video file, the rate its
    first frames' timestamps give (CAP_PROP_POS_MSEC, read through a second capture, so that no frame is taken
    from the one being annotated); else DEFAULT_FPS. Browser recordings report 1000 fps; some streams 0 or NaN.

    :param reported: the fps the capture reports (None, 0 or NaN: none)
    :param source: the video file (None, or anything that is not a file: no timestamps are read)
    :param probe_frames: how many frames' timestamps to read
    :return: (fps, note): ``note`` one line saying what was done when the reported rate was not used, else None
    """
    if plausible_fps(reported):
        return float(reported), None
    said = f"reports {float(reported):g} fps" if reported is not None else "reports no frame rate"
    estimated = None
    if source is not None and os.path.isfile(str(source)):
        cv2 = require_cv2()
        capture = cv2.VideoCapture(str(source))
        timestamps = []
        try:
            while len(timestamps) < probe_frames and capture.isOpened() and capture.grab():
                timestamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
        finally:
            capture.release()
        estimated = fps_from_timestamps(timestamps)
        if plausible_fps(estimated):
            return estimated, (f"Note: {source} {said}; written at {estimated:.3g} fps, the rate of its first "
                               f"{len(timestamps)} frames' timestamps")
    return DEFAULT_FPS, f"Note: {source} {said} and no frame timestamps give one; written at {DEFAULT_FPS:g} fps"


def even_frame(frame):
    """A BGR frame (H, W, 3) uint8 with even sides, as 4:2:0 video needs: an odd side is padded by a copy of its
    last row / column (the frame is returned as it is when both sides are even)."""
    pad_rows, pad_columns = frame.shape[0] % 2, frame.shape[1] % 2
    if not (pad_rows or pad_columns):
        return frame
    return np.pad(frame, ((0, pad_rows), (0, pad_columns), (0, 0)), mode="edge")


@contextlib.contextmanager
def _native_stderr_captured():
    """Send what C code writes to the process's stderr (file descriptor 2) to a temporary file for the block.

    OpenCV's FFmpeg writer prints "tag 'VP90' is not supported with codec id 166 and format 'webm / WebM'" when it
    opens a WebM file, though it then writes VP9 as asked (WebM has no codec tags): the line would read as a
    failure. Yields a function that returns what was written, for an error message when the writer does fail.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield lambda: (captured.seek(0), captured.read().decode("utf-8", "replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class AnnotatedVideoWriter:
    """Write BGR frames as a video that browsers play: H.264 MP4 (PyAV) or VP9 WebM (OpenCV), see the module.

    :param stem: the output path without extension (``.mp4`` or ``.webm`` is added)
    :param fps: frames per second
    :param size: (width, height) of the frames in pixels; odd sides are padded to even
    :param codec: "auto" (H.264 where PyAV has it, else VP9), "h264" or "vp9"
    :raises ValueError: one line naming the file, when the encoder cannot write there
    :raises ImportError: without OpenCV (the VP9 route)

    Attributes: ``codec`` ("h264" / "vp9"), ``description`` (e.g. "VP9 WebM (OpenCV)"), ``path`` (the final file).
    """

    def __init__(self, stem, fps, size, codec="auto"):
        self.codec = choose_codec(codec)
        self.description = DESCRIPTIONS[self.codec]
        self.path = stem + EXTENSIONS[self.codec]
        self.partial = stem + ".partial" + EXTENSIONS[self.codec]  # the extension picks FFmpeg's container
        self.size = (int(size[0]) + int(size[0]) % 2, int(size[1]) + int(size[1]) % 2)
        self.frames = 0
        if self.codec == "h264":
            self._open_pyav(fps)
        else:
            self._open_opencv(fps)

    def _open_pyav(self, fps):
        """An H.264 stream in an MP4 container, 4:2:0 (what browsers decode), the moov atom first (faststart: a
        browser plays it while it downloads)."""
        import av

        try:
            self._container = av.open(self.partial, "w", format="mp4", options={"movflags": "+faststart"})
            self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            self._stream.width, self._stream.height = self.size
            self._stream.pix_fmt = "yuv420p"
        except (av.FFmpegError, OSError) as error:
            raise ValueError(f"{self.partial}: PyAV cannot write an H.264 video here ({error})") from None

    def _open_opencv(self, fps):
        """A VP9 stream in a WebM container through OpenCV's FFmpeg backend."""
        cv2 = require_cv2()
        with _native_stderr_captured() as native_output:
            self._writer = cv2.VideoWriter(self.partial, cv2.VideoWriter_fourcc(*"VP90"), float(fps), self.size)
            opened = self._writer.isOpened()
            said = native_output()
        if not opened:
            last = [line for line in said.splitlines() if line.strip()][-1:] or ["no message"]
            raise ValueError(f"{self.partial}: OpenCV cannot write a VP9 WebM video here ({last[0].strip()})")

    def write(self, frame):
        """Add a BGR frame (H, W, 3) uint8 of the writer's size (before padding)."""
        frame = even_frame(np.ascontiguousarray(frame))
        if self.codec == "h264":
            import av

            for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                self._container.mux(packet)
        else:
            self._writer.write(frame)
        self.frames += 1

    def close(self, keep=True):
        """Finish the file: flush the encoder and rename it to ``path`` (``keep``), or delete it.

        :return: the final path, or None when not kept
        """
        if self.codec == "h264":
            if keep:
                for packet in self._stream.encode():  # the frames the encoder still holds
                    self._container.mux(packet)
            self._container.close()
        else:
            self._writer.release()
        if keep and self.frames:
            os.replace(self.partial, self.path)
            return self.path
        if os.path.exists(self.partial):
            os.remove(self.partial)
        return None


class FrameDetectionsWriter:
    """The per-frame detections of a video or stream as one JSON document, written as the frames come (a stream
    may run for hours) under a temporary name, renamed when complete::

        {"video": source, "width": W, "height": H, "fps": F, "video_file": the annotated video,
         "frames": [
        {"frame": 0, "detections": [{"label", "score", "box": [x1, y1, x2, y2] in pixels}, ...]},
        ...
        ]}

    :param path: the final JSON file
    :param header: the fields before "frames" (source, size, fps, ...)
    """

    def __init__(self, path, header):
        self.path, self.partial = path, path + ".partial"
        self._file = open(self.partial, "w")
        self._file.write(json.dumps(header)[:-1] + ', "frames": [\n')
        self.frames = 0

    def add(self, detections):
        """Append the next frame's detections (numbered from 0)."""
        separator = ",\n" if self.frames else ""
        self._file.write(separator + json.dumps({"frame": self.frames, "detections": detections}))
        self.frames += 1

    def close(self, keep=True):
        """End the document and rename it to ``path`` (``keep``), or delete it.

        :return: the final path, or None when not kept
        """
        self._file.write("\n]}\n")
        self._file.close()
        if keep:
            os.replace(self.partial, self.path)
            return self.path
        os.remove(self.partial)
        return None
