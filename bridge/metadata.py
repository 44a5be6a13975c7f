"""Completing the per-source metadata a train is sent with (protocol 2.2).

Clients expect every source's metadata to hold ``source`` and ``timestamp.tid``, and monitors
drop trains without the wall-clock ``timestamp``, ``timestamp.sec``, ``timestamp.frac``. Train
dicts from files or from users lack some of these; :func:`complete_metadata` adds them without
modifying the caller's dicts.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.protocol import ProtocolError, timestamp_metadata

__all__ = ['complete_metadata']

_TIMESTAMP_KEYS = ('timestamp', 'timestamp.sec', 'timestamp.frac')


def _is_complete(source: str, meta: Mapping, timestamps: bool) -> bool:
    return (next(iter(meta), None) == 'source' and meta['source'] == source
            and 'timestamp.tid' in meta
            and (not timestamps or all(k in meta for k in _TIMESTAMP_KEYS)))


def complete_metadata(
    data: Mapping[str, Mapping[str, Any]],
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    train_id: int | None = None,
    timestamps: bool = True,
) -> tuple[dict[str, dict[str, Any]], int | None]:
    """The metadata to send with one train, and the train's ID.

    Parameters
    ----------
    data : dict
        ``{source: {key: value}}``; a source's ``'metadata'`` entry is its metadata.
    metadata : dict, optional
        ``{source: {...}}``, taking precedence over the ``'metadata'`` entries.
    train_id : int, optional
        ``timestamp.tid`` for sources whose metadata has none; default: the first one found
        in another source.
    timestamps : bool
        Add ``timestamp``, ``timestamp.sec``, ``timestamp.frac`` of now (or derived from an
        existing ``timestamp``) where missing.

    Returns
    -------
    metadata : dict
        ``{source: {...}}`` with ``source`` first and the real source name. Metadata already
        complete is returned as the same dict object (never modified); others are new dicts.
    train_id : int or None
        The train ID sent (None for a train without sources).

    Raises
    ------
    ProtocolError
        ``data`` is not a dict of sources.
    ValueError
        No train ID is known for some source.
    """
    if not isinstance(data, Mapping):
        raise ProtocolError(f'Train data must be a dict of sources, not {type(data).__name__}')
    meta = {}
    for source, props in data.items():
        if metadata is not None and source in metadata:
            m = metadata[source]
        elif isinstance(props, Mapping):
            m = props.get('metadata', {})
        else:
            m = {}
        if _is_complete(source, m, timestamps):
            meta[source] = m  # sent as it is, never modified
            continue
        # The real source name (a renamed or stacked source may carry an old one).
        meta[source] = {'source': source, **{k: v for k, v in m.items() if k != 'source'}}
    known = train_id
    if known is None:
        known = next((m['timestamp.tid'] for m in meta.values() if 'timestamp.tid' in m), None)
    if known is None:
        if meta:
            raise ValueError(
                f'No train ID for source(s) {sorted(meta)}: pass feed(..., train_id=N) '
                "or put 'timestamp.tid' in the metadata"
            )
        return meta, None
    stamp = None
    for m in meta.values():
        if 'timestamp.tid' not in m:
            m['timestamp.tid'] = int(known)
        if timestamps and not all(k in m for k in _TIMESTAMP_KEYS):
            if 'timestamp' in m:
                own = timestamp_metadata(m['timestamp'])
            else:
                stamp = stamp or timestamp_metadata()  # now: the time of feed()
                own = stamp
            for k, v in own.items():
                m.setdefault(k, v)
    try:
        return meta, int(known)
    except (TypeError, ValueError):
        return meta, None
