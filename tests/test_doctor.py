"""`sce doctor`: one ok/warn line per check, each warning with its fix."""

from __future__ import annotations

import re

from sce_builtins.tools.doctor import suggested_workers
from tiny_demo import sce

TOPICS = ("python", "torch", "cuda", "pyav", "jpeg", "torchcodec", "cpu", "plugins", "cache")


def doctor(env: dict | None = None) -> list[str]:
    proc = sce("doctor", env=env)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out.splitlines()


def test_doctor_reports_every_topic_ok_or_warn_with_a_fix(tmp_path):
    lines = doctor({"SCE_CACHE_DIR": str(tmp_path / "cache")})
    report, total = lines[:-1], lines[-1]
    assert all(re.match(r"^(ok   |warn ) \S", line) for line in report), lines
    topics = [line[6:].split("  ")[0].strip() for line in report]
    assert [t for t in topics if not t.startswith(("gpu ", "cudnn"))] == list(TOPICS)
    assert all("; fix: " in line for line in report if line.startswith("warn"))
    assert any(re.match(r"^(ok|warn) +cpu +\d+ usable cores; suggested num_workers \d+", line) for line in report)
    assert f"ok    cache       {tmp_path / 'cache'} (writable" in "\n".join(report)
    assert "ok    plugins     sce-core " in "\n".join(report)
    warns = sum(line.startswith("warn") for line in report)
    assert total == f"{len(report) - warns} ok, {warns} warning(s)"


def test_doctor_warns_about_an_unwritable_cache_with_the_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    lines = doctor({"SCE_CACHE_DIR": str(blocker / "cache")})
    cache = [line for line in lines if line.startswith(("ok    cache", "warn  cache"))]
    assert len(cache) == 1 and cache[0].startswith(f"warn  cache       {blocker / 'cache'} is not writable")
    assert cache[0].endswith("; fix: set SCE_CACHE_DIR to a writable folder")


def test_suggested_workers_share_the_cores_between_processes():
    assert suggested_workers(2, 0) == 1
    assert suggested_workers(16, 0) == 15
    assert suggested_workers(32, 8) == 3
    assert suggested_workers(4, 8) == 1
