#!/usr/bin/env python3
"""A stand-in for Cloudflare Turnstile's siteverify, for load tests on loopback only.

usage: fake_siteverify.py PORT     (listens on 127.0.0.1:PORT, any path, any method)

Every POST is answered {"success": true, ...} whatever the token, so the gateway's login path runs in full
(its own replay check still refuses a token it has seen). HTTP/1.1 keep-alive, one thread per connection.
Prints the number of requests served when stopped (SIGTERM/SIGINT).
"""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = json.dumps({
    "success": True,
    "challenge_ts": "2025-01-01T00:00:00.000Z",
    "hostname": "localhost",
    "error-codes": [],
    "action": "login",
    "cdata": "",
}).encode()
served = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the body waits for the client's delayed ACK
    # (~40 ms per verification), which would be charged to the gateway's login latency.
    disable_nagle_algorithm = True

    def do_POST(self):
        global served
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        served += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    do_GET = do_POST

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1])
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.request_queue_size = 1024

    def stop(*_):
        print(f"fake_siteverify: served {served}", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever()


if __name__ == "__main__":
    main()
