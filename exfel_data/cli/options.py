"""click parameter types for the options shared by several commands."""

from __future__ import annotations

import click

from ..selection import parse_trains
from ..write.request import parse_part, parse_selection


class _ParserType(click.ParamType):
    def __init__(self, name: str, parser):
        self.name = name
        self._parser = parser

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SELECTION = _ParserType("SRC_GLOB[KEY_GLOB]", parse_selection)
TRAINS = _ParserType("SLICE", parse_trains)
PART = _ParserType("i/N", parse_part)
