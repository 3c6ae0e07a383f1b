"""Built-in video decoders: JPEG frame folders (``frame``), PyAV (``pyav``), torchcodec (``torchcodec``).

Each decoder follows :class:`sce_builtins.data.types.VideoDecoder`: ``duration(record)`` returns
the exact rational length in seconds and ``decode(record, windows, rng)`` returns one
:class:`~sce_builtins.data.types.DecodedClip` per window, reading every needed frame once.
Decoders are registered through the ``sce.decoders`` entry points only; importing this
package imports nothing heavy.
"""

from sce_builtins.data.decoders.errors import ClipOutOfRangeError, VideoDecodeError

__all__ = ["ClipOutOfRangeError", "VideoDecodeError"]
