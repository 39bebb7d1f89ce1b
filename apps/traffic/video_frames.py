"""Reading a stored video frame by frame for the counting job.

`local_video` gives OpenCV a real path for a stored video; `video_frames` decodes its frames
ahead on a reader thread so decoding overlaps inference.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage

from core.storage import scratch_file

_FRAMES_DONE = object()


@contextlib.contextmanager
def local_video(name: str) -> Iterator[Path]:
    """A local path of a stored video (the file itself on filesystem storage, a scratch copy otherwise)."""
    try:
        yield Path(default_storage.path(name))
        return
    except NotImplementedError:
        pass
    with default_storage.open(name, "rb") as source, scratch_file(source.chunks(), suffix=Path(name).suffix) as path:
        yield path


def video_frames(path: Path, stride: int, *, prefetch: int = 8) -> Generator[tuple[int, Any], None, None]:
    """`(index, BGR frame)` of every `stride`-th frame, decoded ahead on a reader thread.

    OpenCV releases the GIL while it decodes, so the next frames decode while the model runs on
    the current one (ultralytics does the same for video sources on GPUs). Skipped frames are
    only grabbed, not converted. The thread stops and releases the file when the consumer
    stops early (an error, a closed generator).
    """
    import cv2

    queued: queue.Queue[Any] = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                queued.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        capture = cv2.VideoCapture(str(path))
        try:
            index = 0
            while not stop.is_set():
                if index % stride:
                    if not capture.grab():
                        break
                else:
                    ok, frame = capture.read()
                    if not ok or not put((index, frame)):
                        break
                index += 1
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            errors.append(exc)
        finally:
            capture.release()
            put(_FRAMES_DONE)

    reader = threading.Thread(target=read, name="traffic-video-frames", daemon=True)
    reader.start()
    try:
        while (item := queued.get()) is not _FRAMES_DONE:
            yield item
        if errors:
            raise errors[0]
    finally:
        stop.set()
        reader.join()
