"""Detection in video files and cameras (detect.py), and the annotated videos that browsers and Jupyter play, with
the per-frame detections beside them.

The frame loop: :func:`detect_video` reads a video file (OpenCV), :func:`annotate_capture` runs a capture's frames
through a ``detect_fn`` (a list of PIL images -> one detection list per image, detect.py's bound
``detect_batch``) ``batch_size`` at a time, draws them and writes the annotated video and the JSON;
:func:`run_webcam` shows a camera's frames annotated in a window, one at a time (:func:`open_camera`).

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

NumPy and Pillow; OpenCV and PyAV imported where used; the boxes drawn by ssd_support.drawing.
"""

import contextlib
import json
import os
import sys
import tempfile
from fractions import Fraction

import numpy as np
from PIL import Image

from ssd_support.drawing import draw_detections

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


# A file named with one of these is read as a video (OpenCV), frame by frame.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def stream_name(source):
    """The output name of ``--webcam SOURCE``: "webcam0" for camera 0, else the source's last path part without
    its extension ("rtsp://host/live.sdp" -> "live"), in letters, digits, "-", "_" and "." only."""
    if str(source).isdigit():
        return f"webcam{source}"
    name = os.path.splitext(os.path.basename(str(source).rstrip("/\\")))[0]
    name = "".join(char if char.isalnum() or char in "-_." else "_" for char in name).strip("._")
    return name or "stream"


def is_video(path):
    """True for a file name with a video extension (VIDEO_EXTENSIONS)."""
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def frame_to_image(frame):
    """An OpenCV frame (H, W, 3) uint8 BGR as a PIL RGB image."""
    return Image.fromarray(frame[:, :, ::-1].copy())


def image_to_frame(image):
    """A PIL RGB image as an OpenCV frame (H, W, 3) uint8 BGR."""
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def read_frames(capture, batch_size, max_frames=None):
    """Frames of an OpenCV capture (anything with ``read() -> (ok, frame)``), ``batch_size`` at a time.

    :param max_frames: stop after this many frames (None: at the first failed read only)
    :return: a generator of lists of BGR frames; it ends at the first failed read or at ``max_frames``
    """
    batch, n_read = [], 0
    while max_frames is None or n_read < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(frame)
        n_read += 1
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def annotate_capture(capture, source, output_stem, detect_fn, label_map, batch_size=8, max_frames=None,
                     codec="auto", stream=False):
    """Detect objects in the frames of an opened capture and write the annotated video and the per-frame JSON.

    The video plays in browsers (ssd_support/video.py: H.264 MP4 where PyAV is installed, else VP9 WebM; the
    capture's frame rate, or its timestamps' where it says none that can be believed: :func:`frame_rate`). Both
    files are written under temporary names and renamed when complete. A video file that fails half-way leaves
    neither; a stream (``stream``) ended by Ctrl-C keeps both, up to the last frame written: on a headless server
    that is how a stream is stopped.

    :param capture: an opened cv2.VideoCapture (anything with ``read() -> (ok, BGR frame)``; ``get`` for the fps)
    :param source: what the frames come from, for the JSON and the messages (the file, or "--webcam 0")
    :param output_stem: output path without extension: <stem>.mp4 or <stem>.webm, and <stem>.json
    :param detect_fn: list of PIL images -> list of detection lists (detect_batch with its settings bound)
    :param label_map: {class name: label}, for the box colours
    :param batch_size: frames per forward pass (1 for a live stream: the newest frame, not a batch of old ones)
    :param max_frames: stop after this many frames (None: when the capture ends)
    :param codec: "auto", "h264" or "vp9" (ssd_support.video.choose_codec)
    :param stream: Ctrl-C ends the capture and keeps what was written (else it propagates, and nothing is kept)
    :return: {"frames": n, "video": its path, "json": its path, "codec": e.g. "VP9 WebM (OpenCV)", "stopped":
        True when Ctrl-C ended a stream}
    :raises ValueError: one line naming the source when no frame can be read, or the output when it cannot be
        written
    :raises ImportError: without OpenCV (or PyAV for codec "h264")
    """
    cv2 = require_cv2()
    # The capture's frame rate where it can be believed (browser recordings say 1000 fps), else its timestamps'.
    fps, note = frame_rate(capture.get(cv2.CAP_PROP_FPS) if hasattr(capture, "get") else None, source)
    if note:
        print(note)
    video = log = None
    stopped, complete = False, False
    try:
        try:
            for frames in read_frames(capture, batch_size, max_frames):
                images = [frame_to_image(frame) for frame in frames]
                for image, detections in zip(images, detect_fn(images)):
                    if video is None:
                        video = AnnotatedVideoWriter(output_stem, fps, image.size, codec)
                        log = FrameDetectionsWriter(output_stem + ".json", {
                            "video": str(source), "width": image.width, "height": image.height, "fps": fps,
                            "video_file": os.path.basename(video.path), "codec": video.description})
                    video.write(image_to_frame(draw_detections(image, detections, label_map)))
                    log.add(detections)
        except KeyboardInterrupt:
            if not stream:
                raise
            stopped = True
        complete = True
    finally:
        for writer in (video, log):
            if writer is not None:
                writer.close(keep=complete)
    if video is None:
        raise ValueError(f"{source}: no frame could be read")
    return {"frames": video.frames, "video": video.path, "json": log.path, "codec": video.description,
            "stopped": stopped}


def detect_video(path, output_stem, detect_fn, label_map, batch_size=8, max_frames=None, codec="auto"):
    """Detect objects in every frame of a video file and write the annotated video and the detections.

    The frames go through ``detect_fn`` ``batch_size`` at a time, as images do (:func:`annotate_capture`).

    :param path: the video file
    :param output_stem: output path without extension
    :return: :func:`annotate_capture`'s dict
    :raises ValueError: one line naming the file, when OpenCV cannot read it or the output cannot be written
    :raises ImportError: without OpenCV
    """
    cv2 = require_cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: cannot open the video (missing, or a format OpenCV cannot read)")
    try:
        return annotate_capture(capture, path, output_stem, detect_fn, label_map, batch_size, max_frames, codec)
    finally:
        capture.release()


def show_in_window(frame, title="detect.py (q or Esc quits)"):
    """Show a BGR frame in an OpenCV window.

    :return: False when the user pressed q or Esc (stop), True otherwise
    :raises ImportError: when this OpenCV has no window support (the headless build)
    """
    cv2 = require_cv2()
    try:
        cv2.imshow(title, frame)
        key = cv2.waitKey(1) & 0xFF
    except cv2.error:
        raise ImportError("--webcam shows a window, which the headless OpenCV cannot: pip install "
                          "opencv-python") from None
    return key not in (ord("q"), 27)


def run_webcam(capture, detect_fn, label_map, show=None, max_frames=None):
    """Detect objects in a camera's frames, live: read a frame, detect, draw, show; until ``show`` says stop,
    the camera stops, or ``max_frames``.

    One frame per forward pass (the same detect_fn as images and videos): live video wants the newest frame,
    not a batch of old ones.

    :param capture: an opened cv2.VideoCapture (anything with ``read() -> (ok, BGR frame)``)
    :param detect_fn: list of PIL images -> list of detection lists
    :param label_map: {class name: label}, for the box colours
    :param show: called with each annotated BGR frame, returns False to stop (default: show_in_window)
    :param max_frames: stop after this many frames (None: no limit)
    :return: the number of frames shown
    """
    show = show or show_in_window
    shown = 0
    while max_frames is None or shown < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        image = frame_to_image(frame)
        annotated = draw_detections(image, detect_fn([image])[0], label_map)
        shown += 1
        if not show(image_to_frame(annotated)):
            break
    return shown


def open_camera(source):
    """Open ``--webcam SOURCE``: a camera index ("0"), a stream URL, a device path or a video file.

    :raises ValueError: one line naming the source, when it cannot be opened
    """
    cv2 = require_cv2()
    capture = cv2.VideoCapture(int(source) if str(source).isdigit() else source)
    if not capture.isOpened():
        raise ValueError(f"--webcam {source}: cannot open the camera")
    return capture
