#!/usr/bin/env python3
"""Sends a fixed number of keep-alive GET requests over a fixed number of connections and checks each answer.

usage: fixed_load.py HOST:PORT REQUESTS CONNECTIONS [TOKEN_FILE] [PATH]

Unlike wrk (which runs for a duration), the request count is exact, so a profiler's instruction count
divided by it is an instruction count per request, repeatable on a loaded machine. Each connection sends
the wrk-shaped request (`GET PATH HTTP/1.1`, Host, Authorization) and waits for the whole answer before the
next one. Exits 1 when any answer is not a 200 or a connection breaks.
"""
import asyncio
import sys


async def one_connection(host, port, count, request, errors):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = None
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            if status != b"200":
                errors.append(status.decode())
    finally:
        writer.close()


async def main():
    target, total, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    token = open(sys.argv[4]).read().strip() if len(sys.argv) > 4 and sys.argv[4] else None
    path = sys.argv[5] if len(sys.argv) > 5 else "/"
    host, port = target.rsplit(":", 1)
    request = f"GET {path} HTTP/1.1\r\nHost: {target}\r\n"
    if token:
        request += f"Authorization: Bearer {token}\r\n"
    request = (request + "\r\n").encode()
    per, extra = divmod(total, conns)
    errors = []
    await asyncio.gather(
        *(one_connection(host, int(port), per + (1 if i < extra else 0), request, errors) for i in range(conns))
    )
    if errors:
        print(f"fixed_load: {len(errors)} of {total} answers were not 200 (first: {errors[0]})", file=sys.stderr)
        sys.exit(1)
    print(f"fixed_load: {total} requests on {conns} connections, all 200")


asyncio.run(main())
