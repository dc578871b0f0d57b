"""A DNS proxy that adds a fixed delay: the "slow upstream" (this kernel has no netem).

    python3 delayproxy.py LISTEN_ADDRESS BACKEND_ADDRESS DELAY_MS

UDP and TCP on port 53 of LISTEN_ADDRESS; each query waits DELAY_MS and is
then passed to BACKEND_ADDRESS:53, and the reply comes straight back.  Run
as a script inside the upstream's namespace; it imports nothing from bench.
"""

import asyncio
import socket
import sys

BACKEND_TIMEOUT = 5.0


class UdpFront(asyncio.DatagramProtocol):
    def __init__(self, backend: str, delay: float):
        self.backend = backend
        self.delay = delay
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        asyncio.get_running_loop().create_task(self.relay(data, addr))

    async def relay(self, data: bytes, client) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.delay)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, (self.backend, 53))
            await loop.sock_sendall(sock, data)
            try:
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), BACKEND_TIMEOUT)
            except asyncio.TimeoutError:
                return
        self.transport.sendto(reply, client)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65535):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def serve(listen: str, backend: str, delay: float) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: UdpFront(backend, delay), local_addr=(listen, 53))

    async def tcp_client(reader, writer):
        await asyncio.sleep(delay)
        back_reader, back_writer = await asyncio.open_connection(backend, 53)
        await asyncio.gather(pipe(reader, back_writer), pipe(back_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(tcp_client, listen, 53)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen_address, backend_address, delay_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    asyncio.run(serve(listen_address, backend_address, delay_ms / 1000))
