"""``sce doctor``: what this machine and installation can do, one ``ok``/``warn`` line per
check with the fix; a command of the built-ins, declared in ``sce.commands``.

Fast: it imports torch and the decoders' libraries, never builds a model.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

MIN_PYTHON = (3, 10)


class Check(NamedTuple):
    """One line of the report: ``ok`` or ``warn``, the topic, what was found, the fix."""

    ok: bool
    topic: str
    found: str
    fix: str = ""

    def line(self) -> str:
        """``ok    topic  found`` or ``warn  topic  found; fix: ...``."""
        text = f"{'ok' if self.ok else 'warn':<5} {self.topic:<11} {self.found}"
        return text + (f"; fix: {self.fix}" if self.fix and not self.ok else "")


def _version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return None


def check_python() -> Iterator[Check]:
    version = ".".join(map(str, sys.version_info[:3]))
    yield Check(sys.version_info[:2] >= MIN_PYTHON, "python", version,
                f"use Python >= {'.'.join(map(str, MIN_PYTHON))}")


def check_torch() -> Iterator[Check]:
    import torch

    yield Check(True, "torch", torch.__version__)
    if not torch.cuda.is_available():
        yield Check(False, "cuda", "no CUDA GPU visible: runs use the CPU (trainer.accelerator=cpu)",
                    "install a CUDA build of torch (https://pytorch.org) and check `nvidia-smi`")
        return
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    yield Check(True, "cuda", f"CUDA {torch.version.cuda}")
    yield Check(cudnn is not None, "cudnn", f"cuDNN {cudnn}" if cudnn else "not available",
                "install a torch build with cuDNN")
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        yield Check(True, f"gpu {index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB")


def check_decoders() -> Iterator[Check]:
    av = _version("av")
    if av is None:
        yield Check(False, "pyav", "not installed: the `pyav` decoder cannot read video files",
                    "pip install av")
    else:
        import av as pyav

        codec = pyav.library_versions.get("libavcodec")
        ffmpeg = ".".join(map(str, codec)) if codec else "?"
        yield Check(True, "pyav", f"PyAV {av} (FFmpeg libavcodec {ffmpeg})")
    backends = [name for name, module in (("simplejpeg", "simplejpeg"), ("opencv", "cv2"), ("pillow", "PIL"))
                if _version(module) is not None]
    fast = "simplejpeg" in backends
    yield Check(fast, "jpeg", "backends: " + (", ".join(backends) or "none"),
                "pip install simplejpeg (a dependency of sce-core: it decodes frames fastest)")
    codec = _version("torchcodec")
    yield Check(codec is not None, "torchcodec", f"torchcodec {codec}" if codec else "not installed (optional)",
                "pip install torchcodec (needs system FFmpeg) for the `torchcodec` decoder")


def suggested_workers(cores: int, gpus: int) -> int:
    """Loader workers per process: the usable cores shared by the processes, one kept for the
    main process of each."""
    return max(1, cores // max(gpus, 1) - 1)


def check_cpu() -> Iterator[Check]:
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    workers = suggested_workers(cores, gpus)
    yield Check(cores >= 4, "cpu", f"{cores} usable cores; suggested num_workers {workers} per process "
                f"(datamodule.train.loader.num_workers={workers})",
                "data decoding needs cores: use a machine with more CPUs per GPU")


def check_plugins() -> Iterator[Check]:
    from sce_core import registries as reg

    dists = sorted({f"{ep.dist.name} {ep.dist.version}" for ep in reg.scan_entry_points() if ep.dist})
    reg.load_all(strict=False)
    failures = reg.load_failures()
    if failures:
        names = ", ".join(sorted(f"{e.kind}/{e.name} ({e.dist})" for e in failures))
        yield Check(False, "plugins", f"{len(failures)} component(s) fail to import: {names}",
                    "run `sce plugins --check` for the tracebacks, or SCE_DISABLE_PLUGINS=dist")
    else:
        yield Check(True, "plugins", f"{', '.join(dists)}; every component imports")


def check_cache() -> Iterator[Check]:
    from sce_core.paths import CACHE_ENV, cache_dir

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        yield Check(False, "cache", f"{folder} is not writable ({exc.strerror or exc})",
                    f"set {CACHE_ENV} to a writable folder")
        return
    yield Check(True, "cache", f"{folder} (writable; {CACHE_ENV} moves it)")


CHECKS: tuple[Callable[[], Iterator[Check]], ...] = (
    check_python, check_torch, check_decoders, check_cpu, check_plugins, check_cache)


def run_checks() -> list[Check]:
    """Every check; one that crashes is a ``warn`` line naming the error."""
    out: list[Check] = []
    for check in CHECKS:
        try:
            out += list(check())
        except Exception as exc:  # noqa: BLE001 - the report goes on
            out.append(Check(False, check.__name__.removeprefix("check_"), f"check failed: {exc}",
                             "report this with `sce --debug doctor`"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sce doctor``: print the report; exit 0 (warnings are advice, not errors)."""
    argparse.ArgumentParser(prog="sce doctor", description=__doc__.splitlines()[0]).parse_args(argv)
    checks = run_checks()
    for check in checks:
        print(check.line())
    warns = sum(not c.ok for c in checks)
    print(f"{len(checks) - warns} ok, {warns} warning(s)")
    return 0
