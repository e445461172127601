"""Test, demo and benchmark helpers: a replay server that serves recorded provider streams.

    from polystream.testing import ReplayServer, Reply

    with ReplayServer() as server:
        api_base = server.serve_fixture("openai", "openai_chat_text.sse", split="event", delay=0.01)
        ...  # point a client at api_base; inspect server.requests afterwards

Standard library only (asyncio); importing this does not need httpx.
CLI: `python -m polystream.testing.replay --provider openai --fixture path.sse`.
"""

from __future__ import annotations

from ._providers import PROVIDER_ROUTES, STREAM_PATHS, ProviderRoutes
from ._reply import Reply, content_type_for, split_body, split_events
from ._server import ReplayServer, Request

__all__ = [
    "PROVIDER_ROUTES",
    "STREAM_PATHS",
    "ProviderRoutes",
    "ReplayServer",
    "Reply",
    "Request",
    "content_type_for",
    "split_body",
    "split_events",
]
