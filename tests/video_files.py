"""Reading a video file back through OpenCV, for the tests of detect.py's video output."""

import cv2


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
