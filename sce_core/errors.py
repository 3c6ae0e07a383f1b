"""Exception types of sce-core. Every message is one line that names the problem and the fix."""

from __future__ import annotations

from dataclasses import dataclass


class SCEError(Exception):
    """Base class: a user-facing error whose ``str`` is a complete one-line message.

    ``same_on_every_rank``: the ranks of a multi-process run agreed to raise this error together
    with the same message (a stop signal, a bad-sample limit counted over all ranks), so the
    ``sce`` command prints it once, from rank 0. Other errors are printed by every rank that
    raises them, ranks above 0 naming themselves.
    """

    same_on_every_rank: bool = False


class UnknownComponentError(SCEError, LookupError):
    """A name that no registry of the expected kind provides."""


class AmbiguousComponentError(SCEError, LookupError):
    """A name provided by several distributions; ``dist:name`` picks one."""


class ComponentLoadError(SCEError, ImportError):
    """A component whose module failed to import; chained to the original exception."""


class RegistrationError(SCEError, ValueError):
    """An invalid in-process registration (name clash with a different object, bad kind)."""


class PluginLoadError(SCEError, RuntimeError):
    """Raised in strict mode (``SCE_STRICT_PLUGINS=1``) when any plugin fails to load."""


class PluginHookError(SCEError, RuntimeError):
    """Raised in strict mode when a plugin's hook implementation raises; names hook and plugin."""


class ConfigNotFoundError(SCEError, FileNotFoundError):
    """A config name or path that does not exist."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a config: where it is and what to do."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class ConfigError(SCEError, ValueError):
    """One or more config problems, all reported at once, sorted by config path."""

    def __init__(self, issues: list[Issue] | Issue | str, path: str = "") -> None:
        if isinstance(issues, str):
            issues = [Issue(path, issues)]
        elif isinstance(issues, Issue):
            issues = [issues]
        self.issues: list[Issue] = sorted(issues, key=lambda i: i.path)
        super().__init__(self._format())

    def _format(self) -> str:
        if len(self.issues) == 1:
            return str(self.issues[0])
        lines = [f"{len(self.issues)} problems in the config:"]
        lines += [f"  - {issue}" for issue in self.issues]
        return "\n".join(lines)


class RunInterrupted(SCEError):
    """A run stopped by a signal (after saving its checkpoint when training had started).

    ``exit_code`` is what ``sce`` exits with: 128 + the signal number (143 for SIGTERM), the
    code a shell reports for a process ended by that signal, so ``sce pretrain ... && next``
    does not go on and a scheduler sees an unfinished job.
    """

    same_on_every_rank = True

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
