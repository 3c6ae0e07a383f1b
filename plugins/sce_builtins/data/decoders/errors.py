"""The exception decoders raise for bad data (so datasets can skip, count and report it)."""

from __future__ import annotations


class VideoDecodeError(RuntimeError):
    """A video or frame folder could not be decoded: corrupt, truncated, missing or too short.

    Args:
        path: the file or folder that failed.
        reason: a short one-line explanation.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = str(reason).replace("\n", " ").strip()
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # keep both fields when sent between processes
        return (type(self), (self.path, self.reason))


class ClipOutOfRangeError(VideoDecodeError):
    """A clip window starts before 0 or after the end of the video.

    Args:
        path: the video.
        reason: which bound was violated.
    """
