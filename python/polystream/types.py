"""Plain-data result types.

Hot-path chunk objects are built in Rust (``polystream.ChatCompletionChunk``); everything read once
per stream (the final completion, usage, logprobs) is a :class:`Record`: a ``dict`` that also
reads like the openai SDK's models (``completion.choices[0].message.content``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Record", "ChatCompletion"]


class Record(dict):  # type: ignore[type-arg]
    """A dict with attribute access. Absent keys read as ``None``, like the SDK's optional fields."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            if name.startswith("__"):
                raise AttributeError(name) from None
            return None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    @classmethod
    def wrap(cls, obj: Any) -> Any:
        """Recursively turn dicts into Records (lists are walked, scalars returned as is)."""
        if isinstance(obj, dict):
            return cls((k, Record.wrap(v)) for k, v in obj.items())
        if isinstance(obj, list):
            return [Record.wrap(v) for v in obj]
        return obj

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict``/``list`` data, JSON-ready."""
        return _plain(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return json.dumps(self, ensure_ascii=False)

    # pydantic-style names, for code written against the openai SDK.
    model_dump = to_dict
    model_dump_json = to_json

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class ChatCompletion(Record):
    """A ``chat.completion``: the accumulated result of a stream."""

    __slots__ = ()


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj
