"""GET /health: LiteLLM's model health check.

Every deployment of the config (or only those of `?model=NAME`) gets one tiny real request — a
one-token completion, all of them at once, each bounded by PROBE_TIMEOUT — and the answer says
which endpoints answered, in LiteLLM's shape:

    {"healthy_endpoints": [{"model_name", "model", "api_base"?}, …],
     "unhealthy_endpoints": [{…, "error": "…"}, …], "healthy_count": n, "unhealthy_count": m}

It needs a key (as LiteLLM's) and sees only the models that key may use. A wildcard deployment
(`openai/*`) is probed only when a concrete name is asked for (`?model=openai/gpt-4o`). Probes
cost a token or so per deployment: orchestrators and load balancers belong on /health/liveliness
and /health/readiness, which call no model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..client import acompletion
from .auth import redact
from .common import authenticate, json_response, state
from .config import Deployment
from .errors import unknown_model

__all__ = ["model_health", "PROBE_TIMEOUT"]

PROBE_TIMEOUT = 30.0
_PROBE = [{"role": "user", "content": "ping"}]


async def model_health(request: Request) -> Response:
    st = state(request)
    principal = authenticate(request)
    router = st.config.models
    name = request.query_params.get("model")
    if name is not None:
        if name not in router:
            raise unknown_model(name)
        principal.check_model(name)
        targets = [(name, d) for d in router.deployments_for(name)]
    else:
        targets = [(d.model_name, d) for d in router.deployments
                   if not d.model_name.endswith("*") and principal.may_use(d.model_name)]
    results = await asyncio.gather(*(_probe(n, d) for n, d in targets))
    healthy = [entry for ok, entry in results if ok]
    unhealthy = [entry for ok, entry in results if not ok]
    return json_response({"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
                          "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)})


async def _probe(name: str, deployment: Deployment) -> tuple[bool, dict[str, Any]]:
    """(answered, what to show of the endpoint). Keys never show; error texts are redacted."""
    model, kwargs = deployment.target(name)
    mock = deployment.mock_response is not None
    entry: dict[str, Any] = {"model_name": name, "model": deployment.model if mock else model}
    if kwargs.get("api_base") and not mock:
        entry["api_base"] = str(kwargs["api_base"])
    # One attempt at one deployment: the check is about this endpoint, not about getting an answer.
    kwargs.update(max_tokens=1, num_retries=0)
    kwargs.pop("fallbacks", None)
    try:
        await asyncio.wait_for(acompletion(model, _PROBE, **kwargs), PROBE_TIMEOUT)
    except asyncio.TimeoutError:
        return False, {**entry, "error": f"no answer within {PROBE_TIMEOUT:g} s"}
    except Exception as exc:  # noqa: BLE001 - a probe reports whatever went wrong (typed errors mostly)
        return False, {**entry, "error": redact(f"{type(exc).__name__}: {exc}")}
    return True, entry
