"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s demo`."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (the README's test command)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, the built-ins, tests and benchmarks."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "sce_core", "plugins", "tests", "benchmarks", "examples")


@nox.session
def demo(session: nox.Session) -> None:
    """The README's main job: SCE pretraining on built-in synthetic videos, on CPU."""
    session.install(".")
    session.run("sce", "pretrain", *session.posargs)


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Every benchmark script; each prints ratios against a baseline from the same run."""
    session.install(".[test]")
    for script in sorted(__import__("pathlib").Path("benchmarks").glob("*.py")):
        session.run("python", str(script))
