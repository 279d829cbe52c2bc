"""Embedded backend throughput: requests/s of a trivial model vs a bare Starlette endpoint, same uvicorn.

    .venv/bin/python benchmarks/bench_backend_rps.py [--quick]

Two server processes, each uvicorn with the backend's own settings (``backend.server.uvicorn_config``)
on a random loopback port:
* backend: ``backend.app.create_app`` with a token and one model ``bench/echo`` that returns its
  input (the whole wire path: auth middleware, JSON body, schema validation, job store, worker thread,
  reply mapping);
* bare: a Starlette app with one ``POST /api/v2/execute/{id}`` route that parses the JSON body and
  answers ``{"status": "SUCCESS", "completed": true, "data": <data>}``.
A raw-socket load generator (benchmarks/loadgen.py, its own process) keeps 16 keep-alive connections
busy for 3 s on one server, then the other, round after round; the figure is the median req/s ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from typing import Any

from common import BENCH, OUR_PY, median, save


def serve(kind: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from aix_jupyter.backend.server import bind_socket, uvicorn_config

    token = secrets.token_urlsafe(16)
    if kind == "backend":
        from aix_jupyter.backend.app import create_app
        from aix_jupyter.backend.catalog import Catalog, ModelSpec, param
        from aix_jupyter.core.parameters import ModelParameters

        def echo(inputs: dict[str, Any], ctx: object) -> Any:
            return inputs["text"]

        spec = ModelSpec(
            id="bench/echo",
            name="bench-echo",
            function="text-generation",
            runner=echo,
            params=ModelParameters([param("text", required=True)]),
            primary="text",
        )
        app = create_app(Catalog([spec]), token=token)
    else:

        async def endpoint(request: Request) -> JSONResponse:
            body = await request.json()
            return JSONResponse({"status": "SUCCESS", "completed": True, "data": body.get("data")})

        app = Starlette(routes=[Route("/api/v2/execute/{model_id:path}", endpoint, methods=["POST"])])
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn_config(app))
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]} {token}", flush=True)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.sleep(900)  # bounded: stops by itself
        server.should_exit = True
        await task

    asyncio.run(main())


def _start(kind: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [str(OUR_PY), __file__, "--serve", kind], stdout=subprocess.PIPE, text=True, cwd=str(BENCH)
    )
    assert proc.stdout
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"{kind} server did not start")
    time.sleep(0.5)
    return proc, line[1], line[2]


def _load(url: str, token: str, seconds: float, connections: int) -> dict[str, Any]:
    cmd = [
        str(OUR_PY),
        str(BENCH / "loadgen.py"),
        f"{url}/api/v2/execute/bench%2Fecho",
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
        "--body",
        json.dumps({"data": "hello"}),
        "--header",
        f"x-api-key: {token}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    reply = json.loads(result["first_reply"])
    if result["errors"] or reply.get("status") != "SUCCESS" or reply.get("data") != "hello":
        raise RuntimeError(f"unexpected reply {result['first_reply']!r} ({result['errors']} errors)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2 s instead of 6 of 3 s")
    parser.add_argument("--serve", choices=("backend", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    rounds, seconds = (3, 2.0) if args.quick else (6, 3.0)
    servers = {kind: _start(kind) for kind in ("backend", "bare")}
    rps: dict[str, list[float]] = {"backend": [], "bare": []}
    p95: dict[str, list[float]] = {"backend": [], "bare": []}
    try:
        for _, url, token in servers.values():  # warm-up
            _load(url, token, 1.0, args.connections)
        for r in range(rounds):
            for kind in ("backend", "bare") if r % 2 == 0 else ("bare", "backend"):
                _, url, token = servers[kind]
                out = _load(url, token, seconds, args.connections)
                rps[kind].append(out["rps"])
                p95[kind].append(out["latency_p95_ms"])
                print(f"round {r + 1} {kind}: {out['rps']:.0f} req/s", file=sys.stderr)
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)
    med = {k: round(median(v), 1) for k, v in rps.items()}
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "seconds_per_round": seconds,
        "connections": args.connections,
        "rps_median": med,
        "latency_p95_ms_median": {k: round(median(v), 2) for k, v in p95.items()},
        "ratios": {"trivial model / bare Starlette (req/s)": round(med["backend"] / med["bare"], 3)},
        "target": "none set (issue asks for the ratio)",
    }
    print(json.dumps(result, indent=2))
    save("backend_rps", result)


if __name__ == "__main__":
    main()
