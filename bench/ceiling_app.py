"""The no-model ceiling: the same FastAPI + uvicorn stack parsing the same JSON, returning a
constant prediction. What this machine can do at best per request, before any model work."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

_CONSTANT = orjson.dumps(
    {
        "model": "ceiling",
        "version": 1,
        "predictions": [{"label": "7", "probabilities": {str(d): 0.1 for d in range(10)}}],
    }
)


@app.post("/v1/models/{name}:predict")
async def predict(request: Request, name: str) -> Response:
    """Parse the body (as a real server must), return a constant."""
    orjson.loads(await request.body())
    return Response(_CONSTANT, media_type="application/json")


@app.get("/health/ready")
async def ready() -> Response:
    return Response(b'{"status":"ready"}', media_type="application/json")
