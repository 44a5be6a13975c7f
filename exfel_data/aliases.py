"""Aliases: short names for sources and (source, key) pairs, as in EXtra-data.

``run.with_aliases({'xgm': 'SA1_XTD2_XGM/XGM/DOOCS', 'hv': (src, 'pulseEnergy.photonEnergy')})``
or an alias file (YAML, JSON or TOML) gives ``run.alias['xgm']`` (a SourceData) and
``run.alias['hv']`` (a KeyData). Alias names match ignoring case and ``_`` versus ``-``.
:class:`AliasMixin` holds the collection methods; :class:`AliasIndexer` is ``run.alias``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from .exceptions import AliasError

__all__ = ["AliasIndexer", "AliasMixin", "AliasSpec", "load_alias_file",
           "DEFAULT_ALIASES_FILE", "default_alias_file"]

#: What ``with_aliases`` and ``aliases=`` take: a dict or an alias file path.
AliasSpec = Mapping[str, str | tuple] | str | os.PathLike
#: An alias selection: an alias, a list of aliases / (alias, key glob), or a dict.
AliasSelection = str | Iterable | Mapping

#: Where ``open_run`` looks for a proposal's alias file; ``{}`` is the proposal folder.
DEFAULT_ALIASES_FILE = "{}/usr/extra-data-aliases.yml"
#: Facility software folder holding per-instrument alias templates
#: (``<root>/<INSTRUMENT>/extra-data-aliases-default.yml``); EXtra-data's variable.
SW_ROOT_ENV = "EXTRA_DATA_SW_ROOT"
_JHUB_PREFIX = "https://max-jhub.desy.de/hub/user-redirect/lab/tree/GPFS/"

def _norm(alias: str) -> str:
    """The form aliases are compared in: lower case, ``-`` for ``_``."""
    return alias.lower().replace("_", "-")


def _target(alias: str, value, origin: str) -> str | tuple[str, str]:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise ValueError(f"Alias {alias!r} in {origin}: expected a source name or a "
                     f"[source, key] pair, got {value!r}")


def _parse_mapping(data: Mapping, origin: str) -> dict[str, str | tuple[str, str]]:
    """Alias -> target from a file's top level; nested ``source: {alias: key}`` too."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{origin}: an alias file holds a mapping of alias names, "
                         f"not {type(data).__name__}")
    out: dict[str, str | tuple[str, str]] = {}
    for name, value in data.items():
        if isinstance(value, Mapping):  # SOURCE: {alias: key, ...}
            for alias, key in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"Alias {alias!r} under {name!r} in {origin}: expected a "
                                     f"key name, got {key!r}")
                out[str(alias)] = (str(name), key)
        else:
            out[str(name)] = _target(str(name), value, origin)
    return out


def load_alias_file(path: str | os.PathLike) -> dict[str, str | tuple[str, str]]:
    """Read an alias file: ``.yml`` / ``.yaml``, ``.json`` or ``.toml``.

    Parameters
    ----------
    path : str or path-like
        The file. Top-level entries map an alias to a source name or a
        ``[source, key]`` pair; a source name mapping to ``{alias: key}`` defines key
        aliases of that source.

    Returns
    -------
    dict
        Alias -> source name or ``(source, key)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unknown file extension, or an entry that is neither form (naming it).
    ImportError
        YAML needs pyyaml, TOML on Python < 3.11 needs tomli.
    """
    path = Path(path)
    ext = path.suffix.lower()
    text = path.read_text()
    if ext in (".yml", ".yaml"):
        try:
            import yaml
        except ImportError:
            raise ImportError(f"Reading the YAML alias file {path} needs pyyaml "
                              "(pip install pyyaml)") from None
        data = yaml.safe_load(text) or {}
    elif ext == ".json":
        data = json.loads(text)
    elif ext == ".toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            try:
                import tomli as tomllib
            except ImportError:
                raise ImportError(f"Reading the TOML alias file {path} needs Python 3.11 "
                                  "or tomli (pip install tomli)") from None
        data = tomllib.loads(text)
    else:
        raise ValueError(f"Alias file {path}: unknown format {ext or '(no extension)'!r}; "
                         "use .yml/.yaml, .json or .toml")
    return _parse_mapping(data, str(path))


def merge_aliases(old: dict, new: dict) -> dict:
    """Both alias dicts in one; the same name (ignoring case, ``-``/``_``) must agree.

    Raises
    ------
    ValueError
        'conflicting alias definition for NAME' when a name means two things.
    """
    out = dict(old)
    seen = {_norm(a): t for a, t in old.items()}
    for alias, target in new.items():
        key = _norm(alias)
        if key in seen and seen[key] != target:
            raise ValueError(f"conflicting alias definition for {key} (or "
                             f"{key.upper()}, {key.replace('-', '_')}, etc.): "
                             f"{seen[key]!r} and {target!r}")
        if key not in seen:
            out[alias] = target
            seen[key] = target
    return out


def _alias_defs(alias_defs) -> tuple[dict, list]:
    """Merged aliases and the files they came from, from dicts and file paths."""
    aliases: dict = {}
    files: list = []
    for d in alias_defs:
        if isinstance(d, Mapping):
            d = {str(a): _target(str(a), t, "the alias dict") for a, t in d.items()}
        elif isinstance(d, (str, os.PathLike)):
            files.append(d)
            d = load_alias_file(d)
        else:
            raise TypeError(f"Aliases come as a dict or an alias file path, not "
                            f"{type(d).__name__}")
        aliases = merge_aliases(aliases, d)
    return aliases, files


def default_alias_file(prop_dir: str) -> Path | None:
    """The proposal's default alias file, copied from the instrument template if missing.

    Like EXtra-data, a missing ``<proposal>/usr/extra-data-aliases.yml`` is created from
    ``$EXTRA_DATA_SW_ROOT/<INSTRUMENT>/extra-data-aliases-default.yml`` (if that exists),
    writable for everyone so the group can edit it. Returns None without a file.
    """
    path = Path(DEFAULT_ALIASES_FILE.format(prop_dir))
    if path.is_file():
        return path
    sw_root = os.environ.get(SW_ROOT_ENV, "/gpfs/exfel/sw")
    template = Path(sw_root, Path(prop_dir).parts[-3], "extra-data-aliases-default.yml")
    if not (os.path.isfile(template) and path.parent.is_dir()):
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(template, tmp)
        os.chmod(tmp, 0o666)
        os.replace(tmp, path)
    except OSError:  # read-only proposal folder: go on without aliases
        tmp.unlink(missing_ok=True)
        return None
    return path


class AliasIndexer:
    """``run.alias``: sources and keys by alias.

    ``run.alias['xgm']`` is ``run[source]``, ``run.alias['hv']`` is ``run[source, key]``,
    ``run.alias['xgm', 'pulseEnergy.photonEnergy']`` a key of an aliased source;
    ``'xgm' in run.alias``; :meth:`select` and :meth:`deselect` take aliases where
    ``run.select`` takes source names.

    Parameters
    ----------
    data : DataCollection
        The collection whose aliases are looked up.
    """

    def __init__(self, data: DataCollection) -> None:  # noqa: F821 (no import cycle)
        self.data = data

    @property
    def file_paths(self) -> list:
        """The alias files the aliases were read from."""
        return list(self.data._alias_files)

    def _lookup(self, alias: str) -> str | tuple[str, str]:
        if not isinstance(alias, str):
            raise TypeError(f"Aliases are strings, not {type(alias).__name__}")
        key = _norm(alias)
        for name, target in self.data._aliases.items():
            if _norm(name) == key:
                return target
        raise AliasError(alias, self.data._aliases)

    def _source_of(self, alias: str) -> str:
        target = self._lookup(alias)
        if not isinstance(target, str):
            raise ValueError(f"{alias!r} is an alias of key {target[1]!r} of {target[0]!r}, "
                             "not of a source; use run.alias[alias] alone")
        return target

    def __getitem__(self, item):
        if isinstance(item, tuple) and len(item) == 2:
            return self.data[self._source_of(item[0]), item[1]]
        target = self._lookup(item)
        return self.data[target]

    def __contains__(self, alias) -> bool:
        try:
            self._lookup(alias)
        except AliasError:
            return False
        return True

    def _ipython_key_completions_(self) -> list[str]:
        return list(self.data._aliases)

    def _resolve(self, seln, key_glob: str = "*"):
        """An alias selection in the terms ``DataCollection.select`` takes."""
        if isinstance(seln, str):
            seln = [(seln, key_glob)]
        if isinstance(seln, Mapping):
            return {self._source_of(a): keys for a, keys in seln.items()}
        items = []
        for entry in seln:
            if isinstance(entry, str):
                target = self._lookup(entry)
                items.append((target, "*") if isinstance(target, str) else target)
            else:
                alias, glob = entry
                items.append((self._source_of(alias), glob))
        return items

    def select(self, seln: AliasSelection, key_glob: str = "*", require_all: bool = False,
               require_any: bool = False):
        """``run.select`` with aliases for sources (and key aliases as whole entries).

        Parameters
        ----------
        seln : str, list or dict
            An alias (with *key_glob*), a list of aliases or ``(source alias, key glob)``
            tuples, or a dict ``{source alias: {keys} or None}``.
        key_glob, require_all, require_any
            As for :meth:`DataCollection.select`.
        """
        return self.data.select(self._resolve(seln, key_glob), require_all=require_all,
                                require_any=require_any)

    def deselect(self, seln: AliasSelection, key_glob: str = "*"):
        """``run.deselect`` with aliases (same forms as :meth:`select`).

        Parameters
        ----------
        seln, key_glob
            As for :meth:`select`.
        """
        return self.data.deselect(self._resolve(seln, key_glob))

    def jhub_links(self) -> dict[str, str]:
        """Alias files under /gpfs -> a link opening them on the facility's JupyterHub."""
        return {str(p): _JHUB_PREFIX + str(p)[len("/gpfs/"):]
                for p in self.data._alias_files if str(p).startswith("/gpfs/")}

    def __str__(self) -> str:
        return f"<exfel_data.AliasIndexer with {len(self.data._aliases)} aliases>"

    def __repr__(self) -> str:
        aliases = self.data._aliases
        if not aliases:
            return "No aliases have been loaded."
        lines = ["Loaded aliases:"]
        for alias, target in aliases.items():
            ok = self._exists(target)
            mark = "  " if ok else "✗ "
            shown = target if isinstance(target, str) else f"{target[0]}: {target[1]}"
            lines.append(f"{mark}{alias}: {shown}")
        links = self.jhub_links()
        if len(self.data._alias_files) == 1:
            f = str(self.data._alias_files[0])
            lines.append(f"\nAlias file: {links.get(f, f)}")
        elif self.data._alias_files:
            lines.append("\nAlias files:")
            lines.extend(f"  {links.get(str(f), str(f))}" for f in self.data._alias_files)
        return "\n".join(lines)

    def _exists(self, target) -> bool:
        if isinstance(target, str):
            return target in self.data.all_sources
        return target[0] in self.data.all_sources and target[1] in self.data[target[0]]


class AliasMixin:
    """The alias methods of :class:`~exfel_data.DataCollection`."""

    _aliases: dict
    _alias_files: list

    def _with_alias_state(self, aliases: dict, files: list):
        new = self._replace()
        new._aliases, new._alias_files = aliases, files
        return new

    @property
    def alias(self) -> AliasIndexer:
        """Sources and keys by alias: ``run.alias['xgm']`` (see :meth:`with_aliases`)."""
        return AliasIndexer(self)

    def with_aliases(self, *alias_defs):
        """New collection with aliases added (to ``run.alias``).

        Parameters
        ----------
        *alias_defs : dict or path
            Dicts mapping an alias to a source name or a ``(source, key)`` tuple, or
            alias files (``.yml``/``.yaml``, ``.json``, ``.toml``) with the same
            mapping, where ``[source, key]`` lists stand for tuples and a source name
            mapping to ``{alias: key}`` defines several key aliases of that source.

        Raises
        ------
        ValueError
            An alias (ignoring case and ``-``/``_``) defined twice with different
            meanings, here or in the aliases already loaded.
        """
        aliases, files = _alias_defs(alias_defs)
        merged = merge_aliases(self._aliases, aliases)
        return self._with_alias_state(
            merged, self._alias_files + [f for f in files if f not in self._alias_files])

    def only_aliases(self, *alias_defs, strict: bool = False, require_all: bool = False):
        """Add aliases (as :meth:`with_aliases`) and select only the aliased data.

        An aliased source keeps all its keys; other sources keep their aliased keys.

        Parameters
        ----------
        *alias_defs : dict or path
            As for :meth:`with_aliases`.
        strict : bool
            Raise if an alias names a source or key that is not in the data (by
            default such aliases are skipped).
        require_all : bool
            Keep only trains where every selected source and key has data.

        Raises
        ------
        ValueError
            With *strict*, listing the aliases whose source or key is missing.
        """
        new = self.with_aliases(*alias_defs)
        whole = {t for t in new._aliases.values() if isinstance(t, str)}
        seln, missing = [], []
        for alias, target in new._aliases.items():
            src, key = (target, "*") if isinstance(target, str) else target
            if src not in self.all_sources or (key != "*" and key not in self[src]):
                missing.append(f"{alias} -> {target}")
            elif key == "*" or src not in whole:
                seln.append((src, key))
        if strict and missing:
            raise ValueError(f"{len(missing)} aliases name data that is not here: "
                             f"{'; '.join(missing)}")
        return new.select(seln, require_all=require_all)

    def drop_aliases(self):
        """New collection without any aliases."""
        return self._with_alias_state({}, [])
