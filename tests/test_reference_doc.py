"""docs/reference.md: every ``docs/reference.md §N.N`` in the repository names a section it has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reference.md"
SCANNED = ("sce_core", "plugins", "tests", "benchmarks", "examples", "docs", "README.md")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".toml"}
NUMBER = r"\d+(?:\.\d+)?"
# "docs/reference.md §1.8", "... §2.7, §10.6", "... §1.2 to §1.5", "... §3.1/§3.3".
REFERENCE = re.compile(rf"docs/reference\.md\s+§{NUMBER}(?:(?:,\s*|\s+to\s+|\s+and\s+|\s*/\s*)§{NUMBER})*")
# Code areas whose comments were moved from the old "spec N.N" to this document.
MOVED = ("plugins/sce_builtins/models", "plugins/sce_builtins/losses",
         "plugins/sce_builtins/transforms", "plugins/sce_builtins/optim", "plugins/sce_builtins/data")


def sections() -> set[str]:
    """Section numbers of the document's headings (``## 1. ...``, ``### 1.8 ...``)."""
    found = re.findall(rf"^#{{2,3}} ({NUMBER})\.?\s", DOC.read_text(), flags=re.M)
    return set(found)


def source_files(*tops: str) -> list[Path]:
    files: list[Path] = []
    for top in tops:
        path = ROOT / top
        candidates = [path] if path.is_file() else path.rglob("*")
        files += [p for p in candidates if p.is_file() and p.suffix in SUFFIXES]
    return files


def test_document_has_the_reference_numbering():
    have = sections()
    assert {str(n) for n in range(11)} <= have
    counts = {"1": 9, "2": 11, "3": 5, "4": 3, "5": 12, "6": 6, "7": 4, "9": 20, "10": 8}
    for top, count in counts.items():
        assert {f"{top}.{i}" for i in range(1, count + 1)} <= have, top


def test_every_reference_in_the_repository_names_an_existing_section():
    have = sections()
    missing = []
    checked = 0
    for path in source_files(*SCANNED):
        text = path.read_text(errors="replace")
        for match in REFERENCE.finditer(text):
            for number in re.findall(rf"§({NUMBER})", match.group(0)):
                checked += 1
                if number not in have:
                    missing.append(f"{path.relative_to(ROOT)}: §{number}")
        if path == DOC:
            for number in re.findall(rf"§({NUMBER})", text):
                checked += 1
                if number not in have:
                    missing.append(f"docs/reference.md: §{number}")
    assert not missing
    assert checked > 50  # the code points here from every built-in area


def test_built_in_areas_no_longer_point_at_the_old_spec():
    old = re.compile(rf"\b[Ss]pec(?: section)? {NUMBER}")
    left = [f"{p.relative_to(ROOT)}:{i}" for p in source_files(*MOVED)
            for i, line in enumerate(p.read_text().splitlines(), 1) if old.search(line)]
    assert left == []


def test_a_reference_to_a_missing_section_is_found():
    doc = "docs/" + "reference.md"  # split so the repository scan does not see this example
    text = f"see {doc} §1.8, §42.1 and {doc} §2.7"
    numbers = [n for m in REFERENCE.finditer(text) for n in re.findall(rf"§({NUMBER})", m.group(0))]
    assert numbers == ["1.8", "42.1", "2.7"]
    assert "42.1" not in sections()
