"""The listening socket: connections it accepts must have Nagle's algorithm off.

With Nagle on, a reply written in two parts (headers, then body) on a kept-alive connection waits
for the client's delayed ACK, adding ~40 ms to every request after the first.
"""

from __future__ import annotations

import asyncio
import socket

from aix_jupyter.backend.server import bind_socket


def test_accepted_connections_have_tcp_nodelay():
    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=bind_socket("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(main()) == 1
