"""Detection in videos and cameras, and the annotated videos that browsers play (ssd_support/video.py), and
detect.py --webcam SOURCE --output DIR (headless), read back with OpenCV: frames counted, codec named."""

import json
import os

import numpy as np
import pytest

import detect
from ssd_support import video
from video_files import FakeCapture, box_detector, read_back
from utils import make_label_map

cv2 = pytest.importorskip("cv2")
LABEL_MAP = make_label_map(["cat"])


def shades(n, size=(63, 97)):
    """n flat BGR frames of an odd size, each a different grey."""
    return [np.full((*size, 3), 30 + 40 * i, dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("codec, fourcc", [("vp9", "VP90"), ("h264", "h264")])
def test_the_writer_gives_a_browser_codec_with_every_frame(tmp_path, codec, fourcc):
    if codec == "h264":
        pytest.importorskip("av")
    writer = video.AnnotatedVideoWriter(str(tmp_path / "clip"), 10.0, (97, 63), codec)
    for frame in shades(5):
        writer.write(frame)
    assert writer.close() == str(tmp_path / f"clip{video.EXTENSIONS[codec]}")
    assert os.listdir(tmp_path) == [f"clip{video.EXTENSIONS[codec]}"]  # no temporary file left
    frames, read_fourcc = read_back(writer.path)
    assert read_fourcc == fourcc and len(frames) == 5
    # 4:2:0 needs even sides: 97 x 63 padded by a copy of the last column / row, the frame itself unmoved.
    assert frames[0].shape == (64, 98, 3)
    for i, frame in enumerate(frames):
        assert np.abs(frame.astype(int) - (30 + 40 * i)).max() <= 6  # lossy, but flat frames stay flat


def test_auto_is_h264_with_pyav_and_vp9_without(monkeypatch):
    monkeypatch.setattr(video, "pyav_h264_available", lambda: True)
    assert video.choose_codec("auto") == "h264"
    monkeypatch.setattr(video, "pyav_h264_available", lambda: False)
    assert video.choose_codec("auto") == "vp9"
    with pytest.raises(ValueError, match="H.264 video needs PyAV: pip install av"):
        video.choose_codec("h264")


def one_cat(images):
    """Forced detections: a cat in the top-left quarter of every image."""
    return [[{"label": "cat", "score": 0.9, "box": [0.0, 0.0, image.width / 2, image.height / 2]}] for image in images]


def test_webcam_with_output_saves_the_stream_without_a_window(tmp_path, monkeypatch, capsys):
    """A synthetic video file as the SOURCE (OpenCV opens a file as a capture); --max-frames stops it."""
    clip = str(tmp_path / "camera.avi")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 8.0, (80, 60))
    for frame in shades(6, (60, 80)):
        writer.write(frame)
    writer.release()
    monkeypatch.setattr(detect, "make_detector", lambda *args, **kwargs: (one_cat, LABEL_MAP, "forced detections"))

    def no_window(frame):
        raise AssertionError("a window was opened")

    monkeypatch.setattr(video, "show_in_window", no_window)
    out = tmp_path / "out"
    assert detect.main(["--webcam", clip, "--output", str(out), "--max-frames", "4", "--video-codec", "vp9"]) == 0
    assert f"--webcam {clip}: 4 frames -> {out / 'camera_detections.webm'} (VP9 WebM (OpenCV))" in \
        capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["camera_detections.json", "camera_detections.webm"]
    frames, fourcc = read_back(out / "camera_detections.webm")
    assert fourcc == "VP90" and len(frames) == 4
    assert np.abs(frames[2][50, 70].astype(int) - 110).max() <= 12  # far from the box: the camera's frame
    assert np.abs(frames[2][15, 1].astype(int) - 110).max() > 40  # the box's left edge
    document = json.loads((out / "camera_detections.json").read_text())
    assert (document["video"], document["width"], document["height"], document["fps"],
            document["video_file"]) == (f"--webcam {clip}", 80, 60, 8.0, "camera_detections.webm")
    assert [entry["frame"] for entry in document["frames"]] == [0, 1, 2, 3]
    assert document["frames"][3]["detections"] == [{"label": "cat", "score": 0.9, "box": [0.0, 0.0, 40.0, 30.0]}]


class StoppedCapture:
    """Three frames, then Ctrl-C (KeyboardInterrupt) while reading the fourth."""

    def __init__(self):
        self.frames = shades(3, (40, 60))

    def read(self):
        if not self.frames:
            raise KeyboardInterrupt
        return True, self.frames.pop(0)


def test_ctrl_c_ends_a_stream_and_keeps_both_files_but_not_a_video_file(tmp_path):
    stem = str(tmp_path / "stream_detections")
    result = video.annotate_capture(StoppedCapture(), "--webcam 0", stem, one_cat, LABEL_MAP, batch_size=1,
                                     codec="vp9", stream=True)
    assert result["stopped"] and result["frames"] == 3
    frames, _ = read_back(stem + ".webm")
    assert len(frames) == 3
    assert len(json.loads(open(stem + ".json").read())["frames"]) == 3

    # A video file stopped half-way is not a result: the interrupt goes on, and no file is left.
    stem = str(tmp_path / "file" / "clip_detections")
    os.makedirs(os.path.dirname(stem))
    with pytest.raises(KeyboardInterrupt):
        video.annotate_capture(StoppedCapture(), "clip.mp4", stem, one_cat, LABEL_MAP, codec="vp9")
    assert os.listdir(os.path.dirname(stem)) == []


def test_video_frames_go_through_the_batched_path_and_come_back_annotated(tmp_path):
    cv2 = pytest.importorskip("cv2")
    clip = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for i in range(5):
        writer.write(np.full((64, 96, 3), 40 * i, dtype=np.uint8))  # grey frames, each a different shade
    writer.release()

    calls, stem = [], str(tmp_path / "out" / "clip_detections")
    os.makedirs(tmp_path / "out")
    result = video.detect_video(clip, stem, box_detector(calls), LABEL_MAP, batch_size=2, codec="vp9")
    assert result["frames"] == 5 and result["video"] == stem + ".webm" and result["codec"] == "VP9 WebM (OpenCV)"
    assert calls == [2, 2, 1]
    assert sorted(os.listdir(tmp_path / "out")) == ["clip_detections.json", "clip_detections.webm"]
    document = json.loads(open(stem + ".json").read())
    assert (document["video"], document["width"], document["height"], document["fps"]) == (clip, 96, 64, 10.0)
    per_frame = document["frames"]
    assert [entry["frame"] for entry in per_frame] == [0, 1, 2, 3, 4]
    assert per_frame[0]["detections"][0]["box"] == [0.0, 0.0, 48.0, 32.0]

    frames, _ = read_back(stem + ".webm")
    assert len(frames) == 5 and frames[0].shape == (64, 96, 3)
    for i, frame in enumerate(frames):
        # Far from the box the frame keeps its shade (VP9 is lossy: a few levels); the box edge is coloured.
        assert np.abs(frame[56, 88].astype(int) - 40 * i).max() <= 12
        assert np.abs(frame[16, 1].astype(int) - 40 * i).max() > 40


def test_webcam_loop_detects_one_frame_at_a_time_until_told_to_stop():
    shown, calls = [], []

    def show(frame):
        shown.append(frame)
        return len(shown) < 3  # the user presses q on the third frame

    assert video.run_webcam(FakeCapture(5), box_detector(calls), LABEL_MAP, show=show) == 3
    assert calls == [1, 1, 1] and len(shown) == 3
    assert shown[1].shape == (40, 60, 3) and shown[1].dtype == np.uint8
    assert tuple(shown[1][35, 55]) == (30, 30, 30)  # outside the box: the camera's frame, BGR
    assert tuple(shown[1][10, 0]) != (30, 30, 30)  # the box's edge
    # The camera running out ends the loop as well.
    assert video.run_webcam(FakeCapture(2), box_detector([]), LABEL_MAP, show=lambda frame: True) == 2


def test_webcam_window_with_headless_opencv_says_what_to_install():
    cv2 = pytest.importorskip("cv2")
    import re

    if not re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        pytest.skip("this OpenCV can open windows (the test needs the headless build)")
    with pytest.raises(ImportError, match="pip install opencv-python"):
        video.show_in_window(np.zeros((4, 4, 3), dtype=np.uint8))


def _recording(path, interval_ms, n_frames):
    """A WebM as browsers' MediaRecorder writes one: VP9, a millisecond time base and no frame rate, the frames
    ``interval_ms`` apart (written with PyAV; OpenCV reads back 1000 fps for it)."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    container = av.open(str(path), "w", format="webm")
    stream = container.add_stream("libvpx-vp9", rate=1000)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.time_base = Fraction(1, 1000)
    for i, frame in enumerate(shades(n_frames, (48, 64))):
        frame = av.VideoFrame.from_ndarray(frame, format="bgr24")
        frame.pts, frame.time_base = i * interval_ms, Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_a_recording_that_reports_1000_fps_is_written_at_its_real_speed(tmp_path, capsys):
    """Issue 31: OpenCV says 1000 fps for a browser recording; written at that rate, 5 seconds of video played in
    5 milliseconds' worth. The annotated video gets the rate of the frames' timestamps (10 fps), read back by
    OpenCV, and the JSON says it."""
    source = tmp_path / "recording.webm"
    _recording(source, 100, 6)
    capture = cv2.VideoCapture(str(source))
    assert capture.get(cv2.CAP_PROP_FPS) == 1000  # the fault this is about (else the test would prove nothing)
    capture.release()
    result = detect.detect_video(str(source), str(tmp_path / "out"), lambda images: [[] for _ in images], LABEL_MAP,
                                 codec="vp9")
    assert "reports 1000 fps; written at 10 fps, the rate of its first 6 frames' timestamps" in capsys.readouterr().out
    written = cv2.VideoCapture(result["video"])
    assert written.get(cv2.CAP_PROP_FPS) == pytest.approx(10, rel=1e-3)
    frames = 0
    while written.grab():
        frames += 1
        last = written.get(cv2.CAP_PROP_POS_MSEC)
    written.release()
    assert frames == 6 and last == pytest.approx(500, abs=1)  # the sixth frame at 0.5 s, as in the recording
    with open(result["json"]) as file:
        assert json.load(file)["fps"] == pytest.approx(10)


def test_frame_rate_believes_plausible_rates_and_falls_back_to_a_stated_default():
    assert video.frame_rate(29.97) == (29.97, None)
    for reported in (0, float("nan"), 1000, None):
        fps, note = video.frame_rate(reported, "--webcam 0")
        assert fps == video.DEFAULT_FPS and note.endswith(f"written at {video.DEFAULT_FPS:g} fps") and "\n" not in note
    # The median interval: a dropped frame (200 ms) does not move it.
    assert video.fps_from_timestamps([0, 40, 80, 160, 200, 240]) == pytest.approx(25)
    assert video.fps_from_timestamps([0]) is None and video.fps_from_timestamps([5, 5]) is None
