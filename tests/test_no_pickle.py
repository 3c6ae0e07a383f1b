"""No pickle from caches: every ``torch.load`` reads weights only, and a file planted in the
torch hub cache is never executed (hash checked on every load, then ``weights_only=True``)."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("sce_core", "plugins", "examples")
# torch hub / torchvision helpers that unpickle with weights_only=False
UNSAFE_CALLS = ("load_state_dict_from_url", "get_state_dict", "load_url")
R3D_FILE = "r3d_18-b3b3357e.pth"  # torchvision's KINETICS400_V1 (DEFAULT) file name


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        base = func.value.id if isinstance(func.value, ast.Name) else ""
        return f"{base}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _weights_only_true(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
               and k.value.value is True for k in call.keywords)


def test_every_torch_load_in_the_source_reads_weights_only():
    files = [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50
    bad, loads = [], 0
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(
                    alias.name == "load" for alias in node.names):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports torch's load by name")
        for call in _calls(tree):
            name, where = _name(call), f"{path.relative_to(ROOT)}:{call.lineno}"
            if name == "torch.load":
                loads += 1
                if not _weights_only_true(call):
                    bad.append(f"{where} torch.load without weights_only=True")
            if name.split(".")[-1] in UNSAFE_CALLS:
                bad.append(f"{where} {name} (unpickles with weights_only=False)")
    assert loads >= 3  # export, trunks' pretrained, the torchvision cache
    assert bad == []


def test_the_scan_catches_an_unsafe_load():
    tree = ast.parse("import torch\na = torch.load(p)\nb = torch.load(p, weights_only=False)\n"
                     "c = torch.load(p, map_location='cpu', weights_only=True)\n")
    flags = [_weights_only_true(c) for c in _calls(tree) if _name(c) == "torch.load"]
    assert flags == [False, False, True]


def _evil_pickle(path: Path, flag: Path) -> None:
    """A pickle that writes ``flag`` when unpickled with ``weights_only=False``."""

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(flag)!r}, 'w').write('pwned')",))

    torch.save({"conv.weight": Evil()}, path)


def test_planted_pickle_in_torch_home_is_not_executed(tmp_path):
    home, flag = tmp_path / "torch-home", tmp_path / "PWNED"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    _evil_pickle(home / "hub" / "checkpoints" / R3D_FILE, flag)
    code = ("import sce_core\n"
            "sce_core.build('trunks', {'_name_': 'tv_r3d_18', 'weights': 'DEFAULT'})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TORCH_HOME": str(home)}, timeout=120)
    assert proc.returncode != 0
    assert "does not match the SHA-256 prefix b3b3357e" in proc.stderr
    assert not flag.exists()


def test_planted_pickle_with_a_matching_hash_is_not_executed(tmp_path, monkeypatch):
    import torchvision
    from sce_builtins.models.trunks._torchvision import cached_weights_path

    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    flag = tmp_path / "PWNED"
    planted = tmp_path / "evil.pth"
    _evil_pickle(planted, flag)
    sha = hashlib.sha256(planted.read_bytes()).hexdigest()[:8]
    weights = torchvision.models.video.R3D_18_Weights.KINETICS400_V1
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/r3d_18-{sha}.pth")
    target = Path(cached_weights_path(weights.url))
    assert target == tmp_path / "torch-home" / "hub" / "checkpoints" / f"r3d_18-{sha}.pth"
    target.parent.mkdir(parents=True)
    planted.rename(target)
    from sce_core import build

    with pytest.raises(ValueError, match="cannot read cached file .* with weights_only=True"):
        build("trunks", {"_name_": "tv_r3d_18", "weights": "DEFAULT"})
    assert not flag.exists()


def test_cached_weights_are_hash_checked_on_every_load(tmp_path, monkeypatch):
    import torchvision

    from sce_core import build

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    torch.manual_seed(5)
    source = torchvision.models.video.r3d_18()
    good = tmp_path / "good.pth"
    torch.save(source.state_dict(), good)
    sha = hashlib.sha256(good.read_bytes()).hexdigest()[:10]
    weights = torchvision.models.video.R3D_18_Weights.KINETICS400_V1
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/r3d_18-{sha}.pth")
    (tmp_path / "checkpoints").mkdir()
    cached = tmp_path / "checkpoints" / f"r3d_18-{sha}.pth"
    good.rename(cached)
    trunk = build("trunks", {"_name_": "tv_r3d_18", "weights": "KINETICS400_V1"})
    assert torch.equal(trunk.layer4[1].conv2[0].weight, source.layer4[1].conv2[0].weight)
    assert torch.equal(trunk.stem[1].running_mean, source.stem[1].running_mean)
    # the same cached file, altered after the first load: refused on the next load
    data = bytearray(cached.read_bytes())
    data[-100] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"does not match the SHA-256 prefix {sha}"):
        build("trunks", {"_name_": "tv_r3d_18", "weights": "KINETICS400_V1"})
