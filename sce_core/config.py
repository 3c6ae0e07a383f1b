"""Config loading: shipped names or paths, ``defaults:`` composition, dotlist overrides.

A config is YAML read by OmegaConf. ``defaults:`` lists partial configs merged before the
file's own content (``_self_`` moves the file's position)::

    defaults:
      - base/trainer_cpu            # merged at the root
      - datamodule: synthetic       # merged under `datamodule`, from datamodule/synthetic.yaml
      - _self_

Names are looked up next to the including file first, then among the shipped configs of every
installed distribution (entry-point group ``sce.configs``); ``dist:name`` picks one
distribution's config where several ship the name. Later parts merge into earlier ones,
except that a component node whose ``_name_`` changes replaces the earlier node; the new node
keeps the earlier node's keys it lists in ``_keep_`` (a sibling component that takes some of
the same arguments: ``model: {_name_: other_model, _keep_: [trunk, projector], temp: 0.2}``).
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sce_core.errors import AmbiguousComponentError, ConfigError, ConfigNotFoundError, Issue
from sce_core.paths import cache_dir
from sce_core.registries import BUILTIN_DIST, normalize_dist, plugin_entry_points

CONFIG_GROUP = "sce.configs"
DEFAULTS_KEY = "defaults"
SELF_MARKER = "_self_"
KEEP_KEY = "_keep_"
SUFFIXES = (".yaml", ".yml")


def config_dirs() -> list[tuple[str, Path]]:
    """``(provider, directory)`` of every installed distribution's shipped configs."""
    dirs = []
    for ep, dist, _version in plugin_entry_points(CONFIG_GROUP):
        dirs += [(dist, folder) for folder in _package_dirs(ep.value)]
    return dirs


def _package_dirs(package: str) -> list[Path]:
    """The folders of a dotted package, found without importing it (``sce plugins`` lists
    config collisions and must import no plugin module)."""
    top, *rest = package.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    roots = [Path(loc) for loc in (spec.submodule_search_locations or [])] if spec else []
    return [root.joinpath(*rest) for root in roots if root.joinpath(*rest).is_dir()]


def config_providers() -> dict[str, list[tuple[str, Path]]]:
    """Every shipped config name with its ``(distribution, file)`` providers, built-ins first."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for dist, root in config_dirs():
        for path in sorted(root.rglob("*")):
            if path.suffix in SUFFIXES:
                name = path.relative_to(root).with_suffix("").as_posix()
                found.setdefault(name, []).append((dist, path))
    for providers in found.values():
        providers.sort(key=lambda dp: (normalize_dist(dp[0]) != BUILTIN_DIST, normalize_dist(dp[0])))
    return found


def config_collisions() -> dict[str, list[str]]:
    """Shipped config names that several distributions provide: ``{name: [dist, ...]}``."""
    return {name: [d for d, _ in providers] for name, providers in config_providers().items()
            if len({normalize_dist(d) for d, _ in providers}) > 1}


def shipped_configs() -> dict[str, Path]:
    """Every shipped config by name (``pretrain_r3d18_sce_kinetics200``, ``eval/linear``).

    A name several distributions ship maps to the built-ins' file, else to the first one found;
    :func:`find_config` refuses such a name unless the built-ins ship it (``dist:name``).
    """
    return {name: providers[0][1] for name, providers in config_providers().items()}


def _shipped(name: str) -> Path | None:
    """The file of a shipped name or ``dist:name``; an ambiguous bare name is an error."""
    providers = config_providers()
    dist, sep, short = name.rpartition(":")
    if sep and dist:
        found = [p for d, p in providers.get(short, []) if normalize_dist(d) == normalize_dist(dist)]
        return found[0] if found else None
    if name not in providers:
        return None
    first_dist = providers[name][0][0]
    others = {normalize_dist(d) for d, _ in providers[name]}
    if len(others) > 1 and normalize_dist(first_dist) != BUILTIN_DIST:
        names = " and ".join(f"'{d}:{name}'" for d, _ in providers[name])
        raise AmbiguousComponentError(f"config '{name}' is shipped by several distributions; "
                                      f"write {names}, or disable one with SCE_DISABLE_PLUGINS")
    return providers[name][0][1]


def find_config(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """The file of a config given as a path or a shipped name; a clear error otherwise."""
    raw = str(name_or_path)
    candidates = [Path(raw)]
    if relative_to is not None:
        candidates.insert(0, relative_to / raw)
    for cand in list(candidates):
        candidates += [cand.with_name(cand.name + s) for s in SUFFIXES]
    for cand in candidates:
        if cand.is_file():
            return cand
    name = raw[: -len(Path(raw).suffix)] if Path(raw).suffix in SUFFIXES else raw
    found = _shipped(name)
    if found is not None:
        return found
    shipped = shipped_configs()
    close = difflib.get_close_matches(name, list(shipped), n=3, cutoff=0.5)
    hint = ("; did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
    raise ConfigNotFoundError(
        f"config '{raw}' is neither a file nor a shipped config{hint} "
        f"(shipped configs: `sce config list`)"
    )


def _read_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ConfigError(f"cannot parse {path}: {exc}".replace("\n", " ")) from exc
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping at the top level, got a list")
    return cfg


def _compose(path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    if path.resolve() in chain:
        cycle = " -> ".join(p.name for p in (*chain, path.resolve()))
        raise ConfigError(f"defaults form a cycle: {cycle}")
    chain = (*chain, path.resolve())
    own = _read_yaml(path)
    defaults = own.pop(DEFAULTS_KEY, None)
    if defaults is None:
        return own
    if not isinstance(defaults, ListConfig):
        raise ConfigError(f"{path}: '{DEFAULTS_KEY}' must be a list of config names")
    parts: list[DictConfig] = []
    self_seen = False
    for item in defaults:
        if item == SELF_MARKER:
            parts.append(own)
            self_seen = True
        elif isinstance(item, str):
            parts.append(_compose(find_config(item, path.parent), chain))
        elif isinstance(item, DictConfig) and len(item) == 1:
            key, name = next(iter(item.items()))
            try:
                sub = find_config(f"{key}/{name}", path.parent)
            except ConfigNotFoundError:
                sub = find_config(str(name), path.parent)
            node = OmegaConf.create()
            OmegaConf.update(node, str(key), _compose(sub, chain), force_add=True)
            parts.append(node)
        else:
            raise ConfigError(f"{path}: bad defaults entry {item!r}; use 'name' or 'key: name'")
    if not self_seen:
        parts.append(own)
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_configs(merged, part)
    return merged


def _drop_replaced_components(base: DictConfig, over: DictConfig, path: str = "") -> None:
    """Replace in ``base`` every component node that ``over`` names differently by the keys
    of it that the new node lists in ``_keep_`` (none without one)."""
    for key in over.keys():
        if key not in base or OmegaConf.is_missing(over, key) or OmegaConf.is_missing(base, key):
            continue
        new, old = over._get_node(key), base._get_node(key)
        if not (isinstance(new, DictConfig) and isinstance(old, DictConfig)):
            continue
        if "_name_" in new and "_name_" in old and new._get_node("_name_") != old._get_node("_name_"):
            base[key] = _kept(old, new.get(KEEP_KEY), join_key(path, str(key)))
        else:
            _drop_replaced_components(old, new, join_key(path, str(key)))


def _kept(old: DictConfig, keep: Any, path: str) -> DictConfig:
    """The keys of ``old`` named in ``keep`` (a list), as a new node."""
    if keep is None:
        return OmegaConf.create()
    if not isinstance(keep, ListConfig) or not all(isinstance(k, str) for k in keep):
        raise ConfigError(Issue(f"{path}.{KEEP_KEY}", f"{KEEP_KEY} must be a list of argument names"))
    unknown = [k for k in keep if k not in old]
    if unknown:
        raise ConfigError(Issue(f"{path}.{KEEP_KEY}", f"cannot keep {', '.join(unknown)}: the replaced "
                                                      f"node has no such key (it has {', '.join(map(str, old))})"))
    return OmegaConf.masked_copy(old, list(keep))


def _drop_keep_keys(cfg: Any) -> None:
    """Remove every ``_keep_`` key (used up by composition)."""
    if isinstance(cfg, DictConfig):
        cfg.pop(KEEP_KEY, None)
        for key in cfg.keys():
            if not OmegaConf.is_missing(cfg, key):
                _drop_keep_keys(cfg._get_node(key))
    elif isinstance(cfg, ListConfig):
        for i in range(len(cfg)):
            if not OmegaConf.is_missing(cfg, i):
                _drop_keep_keys(cfg._get_node(i))


def merge_configs(base: DictConfig, over: DictConfig) -> DictConfig:
    """OmegaConf merge, except that a component node whose ``_name_`` changes replaces the
    earlier node instead of merging into it (its old arguments belong to another component),
    keeping only the earlier keys the new node lists in ``_keep_``."""
    base = base.copy()
    _drop_replaced_components(base, over)
    merged = OmegaConf.merge(base, over)
    _drop_keep_keys(merged)
    return merged  # type: ignore[return-value]


DELETE_PREFIX = "~"
ADD_PREFIX = "+"
MISSING = "???"


def parse_overrides(overrides: Iterable[str]) -> list[tuple[str, str | None]]:
    """``key=value`` -> ``(key, value)``; ``~key`` (or ``~key=``) -> ``(~key, None)``.

    A malformed override, or one that sets the mandatory marker ``???``, is a one-line error.
    """
    pairs: list[tuple[str, str | None]] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip(ADD_PREFIX)
        if key.startswith(DELETE_PREFIX) and len(key) > 1:
            pairs.append((key, None))
            continue
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. seed.seed=42; "
                              f"~key deletes a key)")
        if value.strip() == MISSING:
            raise ConfigError(Issue(key, f"override '{item}' sets the mandatory marker '???'; give "
                                         f"the value itself ({key}=...) or delete the key (~{key})"))
        pairs.append((key, value))
    return pairs


def _parse_value(value: str) -> Any:
    """An override's value as YAML, interpolations kept as written (they resolve in the
    composed config: ``dir.exp=${dir.root}_x``)."""
    if value == "":
        return ""
    return OmegaConf.to_container(OmegaConf.from_dotlist([f"x={value}"]), resolve=False)["x"]


def _delete(cfg: DictConfig, key: str) -> None:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, throw_on_missing=False) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        options = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
        close = difflib.get_close_matches(leaf, options, n=1, cutoff=0.5)
        hint = f"; did you mean '{join_key(parent_key, close[0])}'?" if close else ""
        raise ConfigError(Issue(key, f"cannot delete '{key}': the config has no such key{hint}"))
    parent.pop(leaf)


def join_key(parent: str, key: str) -> str:
    """``a.b`` + ``c`` -> ``a.b.c``."""
    return f"{parent}.{key}" if parent else key


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """Apply dotlist overrides in the context of the composed config: values are YAML whose
    interpolations refer to the whole config, ``~key`` deletes a key, ``null`` sets None."""
    for key, value in parse_overrides(overrides):
        if value is None:
            _delete(cfg, key[len(DELETE_PREFIX):])
        else:
            OmegaConf.update(cfg, key, _parse_value(value), merge=False, force_add=True)
    return cfg


CACHE_RESOLVER = "sce.cache"


def _cache_path(sub: str = "") -> str:
    return str(cache_dir() / str(sub))


def register_resolvers() -> None:
    """OmegaConf resolvers of sce-core: ``${sce.cache:sub/dir}`` is a folder in the cache."""
    if not OmegaConf.has_resolver(CACHE_RESOLVER):
        OmegaConf.register_resolver(CACHE_RESOLVER, _cache_path)


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load a config by shipped name or path, compose its defaults and apply overrides.

    Interpolations stay unresolved in the returned ``DictConfig``; ``???`` values are kept
    for :func:`sce_core.validate.validate_config` to report.
    """
    register_resolvers()
    cfg = _compose(find_config(name_or_path))
    _drop_keep_keys(cfg)
    return apply_overrides(cfg, overrides)


def missing_paths(cfg: Any, prefix: str = "") -> list[str]:
    """Config paths whose value is the mandatory marker ``???``."""
    out: list[str] = []
    if isinstance(cfg, DictConfig):
        for key in cfg.keys():
            path = f"{prefix}.{key}" if prefix else str(key)
            if OmegaConf.is_missing(cfg, key):
                out.append(path)
            else:
                out += missing_paths(cfg._get_node(key), path)
    elif isinstance(cfg, ListConfig):
        for i in range(len(cfg)):
            path = f"{prefix}[{i}]"
            if OmegaConf.is_missing(cfg, i):
                out.append(path)
            else:
                out += missing_paths(cfg._get_node(i), path)
    return out


def to_plain(cfg: Any) -> Any:
    """Resolve interpolations and return plain Python containers (issues name the path)."""
    if not isinstance(cfg, (DictConfig, ListConfig)):
        return cfg
    missing = missing_paths(cfg)
    if missing:
        raise ConfigError([Issue(p, "mandatory value '???' is not set; pass it as an override "
                                    f"({p}=...)") for p in missing])
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # noqa: BLE001 - interpolation errors carry their own key
        raise ConfigError([interpolation_issue(exc)]) from exc


def interpolation_issue(exc: Exception) -> Issue:
    """A failed interpolation as one :class:`Issue` at its key (a cycle is named as one)."""
    key = str(getattr(exc, "full_key", "") or "")
    msg = str(exc).splitlines()[0]
    if "Recursive interpolation" in msg or isinstance(exc, RecursionError):
        return Issue(key, "interpolation cycle: this value refers back to itself through "
                          "other keys; replace one of the interpolations by a value")
    return Issue(key, f"cannot resolve interpolation: {msg}")


def save_config(cfg: Any, path: Path) -> Path:
    """Write a config (mapping or DictConfig) as YAML, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    path.write_text(OmegaConf.to_yaml(node))
    return path
