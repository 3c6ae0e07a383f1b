"""The ``sce`` command. ``sce --help``, ``sce list`` and ``sce plugins`` never import torch.

Errors print one message and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sce_core import failures as known
from sce_core import registries as reg
from sce_core.errors import RunInterrupted, SCEError

COMMANDS_GROUP = "sce.commands"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command whose reader went away


def _launch_rank() -> int:
    """This process' rank as its launcher (Lightning, torchrun, SLURM) set it; 0 alone."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


# -- commands that read metadata only ---------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(reg.KINDS)
    if args.kind and args.kind not in reg.KINDS:
        reg.registry(args.kind)  # raises with a suggestion
    rows = []
    failed = known.failed_keys()
    for kind in kinds:
        registry = reg.registry(kind)
        for entry in registry.entries():
            if not _matches(entry.name, args.pattern):
                continue
            status = entry.status
            if (kind, entry.name, reg.normalize_dist(entry.dist or "")) in failed:
                status = "failed"
            elif registry.conflicted(entry):
                status = f"conflict (use {entry.qualified_name})"
            rows.append({"kind": kind, "name": entry.name, "provider": entry.provider,
                         "target": entry.target, "status": status})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no components match" + (f" '{args.pattern}'" if args.pattern else ""))
        return 0
    _table(rows, ("kind", "name", "provider", "status"))
    return 0


def _matches(name: str, pattern: str | None) -> bool:
    import fnmatch

    if not pattern:
        return True
    if not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return fnmatch.fnmatchcase(name, pattern)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())


def cmd_plugins(args: argparse.Namespace) -> int:
    dists: dict[tuple[str, str], dict[str, list[str]]] = {}
    for ep in reg.scan_entry_points():
        dist = ep.dist.name if ep.dist else "unknown"
        version = ep.dist.version if ep.dist else "?"
        dists.setdefault((dist, version), {}).setdefault(ep.group[len(reg.GROUP_PREFIX):], []).append(ep.name)
    disabled = reg.disabled_dists()
    conflicts = [c for kind in reg.KINDS for c in reg.registry(kind).conflicts]
    from sce_core.config import config_collisions

    shipped_conflicts = config_collisions()
    if args.check:
        reg.load_all(strict=False)
        from sce_core.hooks import plugin_manager

        plugin_manager()
    failures = known.known_failures()
    if args.json:
        print(json.dumps({
            "distributions": [{"name": d, "version": v, "provides": p,
                               "disabled": reg.normalize_dist(d) in disabled}
                              for (d, v), p in sorted(dists.items())],
            "conflicts": [c.reason for c in conflicts],
            "config_conflicts": shipped_conflicts,
            "failures": [{k: v for k, v in f.items() if k != "files"} for f in failures],
        }, indent=2))
        return 1 if failures and args.check else 0
    for (dist, version), provides in sorted(dists.items()):
        flag = "  [disabled by SCE_DISABLE_PLUGINS]" if reg.normalize_dist(dist) in disabled else ""
        builtin = "  (built-ins)" if reg.normalize_dist(dist) == reg.BUILTIN_DIST else ""
        print(f"{dist} {version}{builtin}{flag}")
        for group, names in sorted(provides.items()):
            print(f"  {group}: {', '.join(sorted(names))}")
    for conflict in conflicts:
        print(f"conflict: {conflict.kind}: {conflict.reason}")
    for name, dists in sorted(shipped_conflicts.items()):
        builtin = reg.normalize_dist(dists[0]) == reg.BUILTIN_DIST
        meaning = f"means {dists[0]}'s" if builtin else "is ambiguous"
        spelled = " or ".join(f"'{d}:{name}'" for d in (dists[1:] if builtin else dists))
        print(f"conflict: configs: '{name}' is shipped by {' and '.join(dists)}; the bare name "
              f"{meaning}; write {spelled}")
    if failures:
        source = "now" if args.check else "met by earlier commands; still current"
        print(f"load failures ({source}):")
        for f in failures:
            print(f"  {f['kind']}/{f['name']} from {f['provider']} ({f['target']}): {f['error']}")
            if f.get("traceback"):
                print("    " + f["traceback"].rstrip().replace("\n", "\n    "))
    elif args.check:
        print("every plugin component imports cleanly")
    else:
        print("no load failures recorded (`sce plugins --check` imports every component now)")
    return 1 if failures and args.check else 0


# -- commands that import components ----------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from sce_core.info import describe

    _run_code_files(args)
    print(describe(args.name, kind=args.kind, as_yaml=args.yaml))
    return 0


def _load(args: argparse.Namespace, default: str | None = None) -> Any:
    from sce_core.config import load_config

    config, overrides = split_config_args(args.args, default)
    _run_code_files(args)
    return load_config(config, overrides)


def split_config_args(items: Sequence[str], default: str | None) -> tuple[str, list[str]]:
    """``[CONFIG] [key=value ...]`` -> (config, overrides); CONFIG may be omitted."""
    items = list(items)
    if items and "=" not in items[0]:
        return items[0], items[1:]
    if default is None:
        raise SCEError("missing CONFIG: give a config path or a shipped name (`sce config list`)")
    return default, items


def _run_code_files(args: argparse.Namespace) -> None:
    import runpy

    for path in getattr(args, "code", None) or ():
        if not Path(path).is_file():
            raise SCEError(f"--code file '{path}' does not exist")
        runpy.run_path(path, run_name="__sce_code__")


def cmd_check(args: argparse.Namespace) -> int:
    from sce_core.validate import validate_config

    cfg = _load(args)
    issues = validate_config(cfg, complete=True)
    if issues:
        print(f"{len(issues)} problem(s) in the config:", file=sys.stderr)
        for issue in issues:
            print(f"  - {issue}", file=sys.stderr)
        return 1
    print("config OK")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "list":
        from sce_core.config import config_providers

        for name, providers in sorted(config_providers().items()):
            print(f"{name}  ({providers[0][0]}: {providers[0][1]})")
            for dist, path in providers[1:]:
                print(f"  conflict: also shipped by {dist} ({path}); write '{dist}:{name}'")
        return 0
    from omegaconf import OmegaConf

    cfg = _load(args)
    if args.resolve:
        from sce_core.resolved import resolved_config

        print(OmegaConf.to_yaml(resolved_config(cfg)), end="")
    else:
        print(OmegaConf.to_yaml(cfg), end="")
    return 0


def default_config() -> str:
    """The config ``sce pretrain`` runs without CONFIG, as a plugin declares it."""
    from sce_core.hooks import declarations, is_builtin

    names = [(plugin, name) for plugin, name in declarations("sce_default_config") if name]
    if not names:
        raise SCEError("missing CONFIG: give a config path or a shipped name (`sce config list`); "
                       "no installed plugin declares a default config")
    if not is_builtin(names[0][0]) and len({name for _, name in names}) > 1:
        raise SCEError("missing CONFIG: plugins declare different default configs ("
                       + ", ".join(f"{name} by {plugin}" for plugin, name in sorted(names))
                       + "); give CONFIG")
    return str(names[0][1])  # the built-ins' answer comes first


def _set_verbose(args: argparse.Namespace) -> None:
    """``--verbose``: all of Lightning's output (the ranks it launches inherit it)."""
    import os

    from sce_core.console import VERBOSE_ENV

    if getattr(args, "verbose", False):
        os.environ[VERBOSE_ENV] = "1"


def cmd_pretrain(args: argparse.Namespace) -> int:
    from sce_core.runner import pretrain

    _set_verbose(args)
    items = list(args.args)
    default = default_config() if not items or "=" in items[0] else None
    config, overrides = split_config_args(items, default)
    _run_code_files(args)
    pretrain(config, overrides, code_files=args.code or ())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sce_core.runner import evaluate, find_protocol

    find_protocol(args.protocol)  # an unknown name fails before the config is read
    _set_verbose(args)
    config, overrides = split_config_args(args.args, None)
    _run_code_files(args)
    evaluate(args.protocol, config, overrides, code_files=args.code or ())
    return 0


def _protocols_help() -> str:
    """``sce evaluate --help``: the protocols installed plugins declare, one line each."""
    from sce_core.runner import evaluation_protocols

    lines = ["protocols:"]
    for name, protocol in sorted(evaluation_protocols().items()):
        doc = "" if isinstance(protocol, Exception) else (protocol.__doc__ or "").strip()
        lines.append(f"  {name:<12} {doc.splitlines()[0] if doc else ''}".rstrip())
    return "\n".join(lines)


def cmd_plugin(args: argparse.Namespace) -> int:
    from sce_core.conformance import plugin_report

    problems, notes = plugin_report(args.dist)
    for note in notes:
        print(f"note: {note}")
    if problems:
        print(f"{args.dist}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    tested = " (see the notes for what was not smoke-tested)" if notes else ""
    print(f"{args.dist}: every entry point passes{tested}")
    return 0


# -- parser -------------------------------------------------------------------------------
def _plugin_commands() -> dict[str, Any]:
    return {ep.name: (ep, dist) for ep, dist, _v in reg.plugin_entry_points(COMMANDS_GROUP)}


def build_parser(plugin_commands: dict[str, Any]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sce", description="SCE self-supervised video learning: components, configs, runs.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version="sce-core 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="registered components (metadata only, nothing imported)")
    p.add_argument("kind", nargs="?", help=f"one of: {', '.join(reg.KINDS)}")
    p.add_argument("pattern", nargs="?", help="name filter, shell wildcards allowed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="one component: provider, source, parameters, YAML snippet")
    p.add_argument("name", help="component name, `kind/name` or `dist:name`")
    p.add_argument("--kind", help="look only in this kind")
    p.add_argument("--yaml", action="store_true", help="print only a YAML node with every default")
    p.add_argument("--code", action="append", metavar="FILE",
                   help="Python file registering extra components (repeatable)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="installed plugin distributions and load failures")
    p.add_argument("--check", action="store_true", help="import every component now")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    def config_cmd(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text)
        q.add_argument("args", nargs="*", metavar="[CONFIG] [key=value ...]")
        q.add_argument("--code", action="append", metavar="FILE",
                       help="Python file registering extra components (repeatable)")
        q.set_defaults(func=func)
        return q

    config_cmd("check", "validate a config without building anything", cmd_check)
    p = sub.add_parser("config", help="show the composed config, or list shipped configs")
    p.add_argument("action", choices=["show", "list"])
    p.add_argument("args", nargs="*", metavar="[CONFIG] [key=value ...]")
    p.add_argument("--resolve", action="store_true",
                   help="resolve interpolations, fill defaults, record providers")
    p.add_argument("--code", action="append", metavar="FILE")
    p.set_defaults(func=cmd_config)
    p = config_cmd("pretrain", "pretraining (no CONFIG: the default config a plugin declares)",
                   cmd_pretrain)
    p.add_argument("--verbose", action="store_true", help="all of Lightning's messages and warnings")
    p = sub.add_parser("evaluate", help="downstream evaluation of a pretrained trunk "
                                        "(`sce evaluate --help` lists the protocols)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("protocol", help="an evaluation protocol a plugin declares (listed below)")
    p.add_argument("args", nargs="*", metavar="CONFIG [key=value ...]")
    p.add_argument("--code", action="append", metavar="FILE")
    p.add_argument("--verbose", action="store_true", help="all of Lightning's messages and warnings")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("plugin", help="plugin author tools")
    p.add_argument("action", choices=["validate"])
    p.add_argument("dist", help="distribution name, e.g. sce-plugin-example")
    p.set_defaults(func=cmd_plugin)

    for name, (_ep, dist) in sorted(plugin_commands.items()):
        if name in sub.choices:
            continue
        q = sub.add_parser(name, help=f"(command from {dist}) `sce {name} --help` for details",
                           add_help=False)
        q.add_argument("rest", nargs=argparse.REMAINDER)
        q.set_defaults(func=None, plugin_command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sce`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    plugin_commands = _plugin_commands()
    parser = build_parser(plugin_commands)
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if command_at is not None and argv[command_at] == "evaluate" and _asks_help(argv):
        _subcommand(parser, "evaluate").epilog = _protocols_help()  # imports hook modules
    if command_at is not None and argv[command_at] in plugin_commands:
        # plugin commands parse their own arguments (including --help)
        args = parser.parse_args([*argv[:command_at], argv[command_at]])
        args.rest = argv[command_at + 1:]
    else:
        args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    try:
        if getattr(args, "plugin_command", None):
            ep, _dist = plugin_commands[args.plugin_command]
            code = int(ep.load()(list(args.rest)) or 0)
        else:
            code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:  # `sce info X | head`: the reader has what it wanted
        _drop_stdout()
        code = EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("sce: interrupted", file=sys.stderr)
        code = 130
    except RunInterrupted as exc:
        if _launch_rank() == 0:  # every rank stops alike; one line says so
            print(f"sce: {exc}", file=sys.stderr)
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the command line reports every error in one line
        if args.debug:
            raise
        _print_error(exc, _launch_rank())
        code = 1
    _report_failures()
    return code


def _drop_stdout() -> None:
    """Send what is left of stdout to devnull, so that exiting prints no second error."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _asks_help(argv: Sequence[str]) -> bool:
    return "-h" in argv or "--help" in argv


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _print_error(exc: BaseException, rank: int) -> None:
    """One line for the error; an error every rank agreed on is printed by rank 0 only."""
    if rank and getattr(exc, "same_on_every_rank", False):
        return
    where = f" on rank {rank}" if rank else ""
    print(f"sce: error{where}: {_one_message(exc)}", file=sys.stderr)
    if not isinstance(exc, SCEError):
        print("sce: (run with --debug for the traceback)", file=sys.stderr)


def _one_message(exc: BaseException) -> str:
    if isinstance(exc, SCEError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _report_failures() -> None:
    """Save this command's failures; print the one-line notice while any failure is current."""
    known.save()
    failures = known.known_failures()
    if failures:
        names = ", ".join(sorted({f["dist"] for f in failures}))
        print(f"sce: {len(failures)} plugin component(s) failed to load ({names}); "
              f"run `sce plugins` for details", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
