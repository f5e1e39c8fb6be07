"""Reading a video file back through OpenCV, for the tests of detect.py's video output, and stand-ins for a camera
(FakeCapture) and a detector (box_detector)."""

import cv2
import numpy as np


def read_back(path):
    """(frames, the codec's fourcc as text) of a video file, through OpenCV."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fourcc


def box_detector(calls):
    """A detect_fn that records its batch sizes and finds one cat in the top-left quarter of every image."""
    def detect_fn(images):
        calls.append(len(images))
        return [[{"label": "cat", "score": 0.9, "box": [0.0, 0.0, image.width / 2, image.height / 2]}]
                for image in images]
    return detect_fn


class FakeCapture:
    """Stands in for cv2.VideoCapture: a few BGR frames, then a failed read."""

    def __init__(self, n_frames):
        self.frames = [np.full((40, 60, 3), 30 * i, dtype=np.uint8) for i in range(n_frames)]
        self.released = False

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def isOpened(self):
        return True

    def release(self):
        self.released = True
