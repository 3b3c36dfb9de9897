"""A TCP relay for tests: `tcp_relay.py PORT=HOST:PORT ...` forwards each local port; killing it cuts them all."""

from __future__ import annotations

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side ends, then close the writer (the other pipe ends with it)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def serve(port: int, host: str, target: int) -> asyncio.Server:
    """Listen on 127.0.0.1:port; each connection gets its own connection to host:target."""

    async def on_client(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(on_client, "127.0.0.1", port, reuse_address=True)


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        port, target = spec.split("=")
        host, target_port = target.rsplit(":", 1)
        servers.append(await serve(int(port), host, int(target_port)))
    print("relay ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
