"""Publishing the live runner's partial and final results as a bridge stream.

Each update is one train dict of two sources: ``analysis/LABEL`` (the reducer's
``partial()``, or the final result) and ``analysis/LABEL:info`` (the run's counts,
``final``, the analysis' name and sha256, its parameters as JSON), sent with the ID of
the last reduced train by a :class:`bridge.server.Server` with the ``drop`` policy: a
slow viewer misses updates, it never holds up the run.
"""

from __future__ import annotations

import json

from exfel_data.analysis.contract import AnalysisSpec

__all__ = ["ResultPublisher", "result_source"]


def result_source(label: str) -> str:
    """The source name of a published result (its stats and parameters: ``+ ':info'``)."""
    return f"analysis/{label}"


class ResultPublisher:
    """A server of an analysis' results (``exfel-bridge process --publish``).

    Parameters
    ----------
    endpoint : str
        Where to serve, e.g. ``tcp://*:4600``.
    sock : {'PUB', 'REP'}
        Socket type of the server.
    spec : AnalysisSpec
        The analysis (its label names the source).
    params : dict
        Its parameters, sent along in the ``:info`` source.
    """

    def __init__(self, endpoint: str, sock: str, spec: AnalysisSpec, params: dict):
        from bridge.server import Server

        self.spec, self.params = spec, params
        self._server = Server(endpoint, sock=sock, policy="drop")

    def message(self, data: dict, counts: dict, final: bool) -> dict:
        """The train dict of one update."""
        source = result_source(self.spec.label)
        info = {k: v for k, v in counts.items() if v is not None}
        info.update({"final": final, "analysis": self.spec.name,
                     "analysis_sha256": self.spec.sha256,
                     "params": json.dumps(self.params, default=str)})
        return {source: dict(data), source + ":info": info}

    def send(self, data: dict, counts: dict, train_id: int, final: bool = False) -> None:
        """Publish one update (dropped for clients not ready for it)."""
        self._server.feed(self.message(data, counts, final), train_id=train_id)

    def close(self) -> None:
        """Stop serving, after the last update has left (up to 2 s)."""
        self._server.drain(2.0)
        self._server.stop(linger=1.0)
