"""``sce data ...``: dataset preparation commands (synthetic set, frame extraction, CSV index)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and does not exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The ``sce data`` argument parser."""
    from sce_builtins.tools.synth import DEFAULTS

    parser = _Parser(prog="sce data", description="Dataset preparation tools.")
    sub = parser.add_subparsers(
        dest="command", metavar="{synth,frames,index}", parser_class=_Parser
    )

    p = sub.add_parser(
        "synth",
        help="write the moving-digits synthetic dataset (frame folders + CSVs, mp4 files)",
        description="Write a small labelled synthetic video dataset (scikit-learn digits moving "
        "along random walks) in the frame-folder and mp4 layouts.",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--num-classes", type=int, default=DEFAULTS["num_classes"], help="1..10 digits")
    p.add_argument("--train-per-class", type=int, default=DEFAULTS["train_per_class"])
    p.add_argument("--val-per-class", type=int, default=DEFAULTS["val_per_class"])
    p.add_argument("--frames", type=int, default=DEFAULTS["frames"], help="frames per video")
    p.add_argument("--size", type=int, default=DEFAULTS["size"], help="canvas side (even)")
    p.add_argument("--fps", type=float, default=DEFAULTS["fps"], help="frame rate of the mp4 files")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument(
        "--formats",
        default=",".join(DEFAULTS["formats"]),
        help="comma-separated subset of frames,mp4",
    )
    p.add_argument("--digit-size", type=int, default=None, help="digit side (default 2/3 of size)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a folder without the .sce-synthetic marker that holds only dataset names",
    )

    p = sub.add_parser(
        "frames",
        help="extract JPEG frames from a folder of videos (parallel, resumable)",
        description="Extract IN/<class>/<video> into OUT/<class>/<video stem>/00000001.jpg ...",
    )
    p.add_argument("input", type=Path, metavar="IN", help="folder of videos (searched recursively)")
    p.add_argument("output", type=Path, metavar="OUT", help="output folder")
    p.add_argument("--fps", type=float, default=30, help="output frame rate; 0 keeps every frame")
    p.add_argument("--short-side", type=int, default=256, help="short side in pixels; 0 keeps size")
    p.add_argument("--quality", type=int, default=1, help="ffmpeg -q:v scale, 1 (best) .. 31")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--pattern", default="%08d.jpg", help="frame file name pattern, 1-based")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty OUT that sce data frames did not create (or other options); "
        "existing video folders are kept",
    )

    p = sub.add_parser(
        "index",
        help="write the annotation CSV of a split folder",
        description="Write <class>/<video> <label> <num_frames> lines for a frame-folder split "
        "(or <class>/<file> <label> with --videos). Classes sorted; names with spaces are "
        "written unquoted.",
    )
    p.add_argument("split_dir", type=Path, metavar="SPLIT_DIR")
    p.add_argument("out_csv", type=Path, metavar="OUT.csv")
    p.add_argument("--videos", action="store_true", help="index encoded video files (2 columns)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT.csv")
    return parser


def _synth(args: argparse.Namespace) -> int:
    from sce_builtins.tools.synth import make_synthetic_dataset

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    root = make_synthetic_dataset(
        args.out,
        num_classes=args.num_classes,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        frames=args.frames,
        size=args.size,
        fps=args.fps,
        seed=args.seed,
        formats=formats,
        digit_size=args.digit_size,
        progress=not args.no_progress,
        force=args.force,
    )
    print(f"synthetic dataset ready in {root}")
    return 0


def _frames(args: argparse.Namespace) -> int:
    from sce_builtins.tools.frames import extract_frames

    if args.workers is not None and args.workers < 1:
        raise ValueError("frames: --workers must be >= 1")
    report = extract_frames(
        args.input,
        args.output,
        fps=args.fps,
        short_side=args.short_side,
        quality=args.quality,
        workers=args.workers,
        pattern=args.pattern,
        progress=not args.no_progress,
        force=args.force,
    )
    print(
        f"extracted {report.extracted} video(s), {report.already_done} already done, "
        f"{len(report.failed)} skipped"
    )
    if report.failed:
        print(f"skipped {len(report.failed)} unreadable video(s):", file=sys.stderr)
        for path, reason in report.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
    return 0


def _index(args: argparse.Namespace) -> int:
    from sce_builtins.tools.index import write_frame_index, write_video_index

    write = write_video_index if args.videos else write_frame_index
    n = write(args.split_dir, args.out_csv, force=args.force)
    print(f"wrote {n} line(s) to {args.out_csv}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sce data ARGS``; return the exit status (errors: one line on stderr, status 1)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.command is None:
            parser.print_help()
            return 1
        return {"synth": _synth, "frames": _frames, "index": _index}[args.command](args)
    except (_UsageError, ValueError, OSError) as exc:
        print(f"error: {exc}" if not isinstance(exc, _UsageError) else str(exc), file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(
            "interrupted (finished work is kept; run the same command again to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
