#!/usr/bin/env python3
"""A TCP proxy that holds every byte DELAY_MS in each direction (pipelined), for
benchmarking NATS gateways over a long link on one machine, and for putting a region or a
person far from the browser in the browser tests.
usage: delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS [JITTER_MS]

With JITTER_MS, each chunk is held DELAY_MS plus or minus up to JITTER_MS (uniformly),
but never released before the chunk read before it: TCP keeps its order, so jitter shows
as bunching, as it does on a real link."""
import asyncio, random, sys

listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000
jitter = int(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.0

async def pump(reader, writer):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    async def read():
        last = 0.0
        while True:
            data = await reader.read(65536)
            at = loop.time() + max(0.0, delay + random.uniform(-jitter, jitter))
            last = max(last, at)
            await queue.put((last, data))
            if not data:
                return
    async def write():
        while True:
            at, data = await queue.get()
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()
    await asyncio.gather(read(), write(), return_exceptions=True)

async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()

asyncio.run(main())
