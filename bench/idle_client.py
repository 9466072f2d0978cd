#!/usr/bin/env python3
"""Holds many idle keep-alive connections to one server, for bench/idle_connections.sh.

usage: idle_client.py HOST:PORT COUNT TOKEN_FILE

1. Opens COUNT connections (at most 256 being set up at once), sends one GET on each and reads the whole
   answer, then prints `OPEN <n>` and waits for a line on stdin (the caller measures memory now).
2. Sends one more GET on every connection (all at once) and prints `ANSWERED <n-200> <errors>`, then waits for
   a line on stdin again (memory after the burst) and closes everything.
A connection the server closed while idle counts as an error in step 2.
"""
import asyncio
import sys


async def request(reader, writer, req):
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status == b"200"


async def main():
    target, count, token_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    host, port = target.rsplit(":", 1)
    token = open(token_file).read().strip()
    req = f"GET / HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    gate = asyncio.Semaphore(256)
    conns = []

    async def open_one():
        async with gate:
            reader, writer = await asyncio.open_connection(host, int(port), limit=4096)
            ok = await request(reader, writer, req)
            conns.append((reader, writer))
            return ok

    results = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
    failed = sum(1 for r in results if r is not True)
    print(f"OPEN {len(conns)} {failed}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)

    async def again(reader, writer):
        try:
            return await asyncio.wait_for(request(reader, writer, req), 30)
        except Exception:
            return False

    results = await asyncio.gather(*(again(r, w) for r, w in conns))
    ok = sum(1 for r in results if r)
    print(f"ANSWERED {ok} {len(conns) - ok}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for _, w in conns:
        w.close()


asyncio.run(main())
