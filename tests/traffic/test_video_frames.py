"""The video job's frame reader (`apps.traffic.video_frames.video_frames`): decoded ahead, same frames as OpenCV."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from apps.traffic.video_frames import video_frames
from fixtures.traffic_shapes import crossing_clip


def _opencv_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_frames_equal_a_plain_opencv_read_with_and_without_stride(tmp_path: Path) -> None:
    clip = crossing_clip(tmp_path / "clip.avi", size=64)
    expected = _opencv_frames(clip.path)
    assert len(expected) == clip.frames

    for stride in (1, 3):
        got = list(video_frames(clip.path, stride, prefetch=2))
        assert [index for index, _ in got] == list(range(0, clip.frames, stride))
        assert all(np.array_equal(frame, expected[index]) for index, frame in got)


def test_stopping_early_ends_the_reader_thread(tmp_path: Path) -> None:
    clip = crossing_clip(tmp_path / "clip.avi", size=64)
    frames = video_frames(clip.path, 1, prefetch=1)
    assert next(frames)[0] == 0
    frames.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "traffic-video-frames"]
