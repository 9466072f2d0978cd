"""An upstream that trusts nothing but the gateway's signed identity assertion (issue 18).

It verifies the assertion header of every request with PyJWT (an independent JWT library, with
`cryptography` for EdDSA/ES256) against the gateway's published assertion JWKS, exactly as a real upstream
would: signature by the key the header's `kid` names, `alg` pinned by that key, `typ` = assertion+jwt,
`aud` = this upstream's audience, `iss`, `exp`/`iat` required and checked (no leeway).

Usage: verify_assertion.py <issuer> <audience> <header>
Prints the port it listens on (127.0.0.1, chosen by the OS), then reads the JWKS URL from stdin (the
gateway is started after this upstream, since its config needs the port). Every request gets JSON:
200 {"claims", "header", "assertion", "assertion_values"} or 401 {"error"}.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

ISSUER, AUDIENCE, HEADER = sys.argv[1], sys.argv[2], sys.argv[3]
ALLOWED = {"EdDSA", "ES256"}


class Verifier(BaseHTTPRequestHandler):
    jwks = None

    def log_message(self, *args):  # keep the test output clean
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        values = self.headers.get_all(HEADER) or []
        if len(values) != 1:
            return self.reply(401, {"error": f"expected one {HEADER}, got {len(values)}",
                                    "assertion_values": values})
        token = values[0]
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "assertion+jwt":
                raise jwt.InvalidTokenError(f"typ {header.get('typ')!r}")
            key = Verifier.jwks.get_signing_key_from_jwt(token)
            if key.algorithm_name not in ALLOWED or header.get("alg") != key.algorithm_name:
                raise jwt.InvalidAlgorithmError(f"alg {header.get('alg')!r} for key {key.algorithm_name}")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except Exception as e:  # every failure is a refusal, named for the test's messages
            return self.reply(401, {"error": f"{type(e).__name__}: {e}"})
        self.reply(200, {"claims": claims, "header": header, "assertion": token,
                         "assertion_values": values})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Verifier)
    print(server.server_address[1], flush=True)
    jwks_url = sys.stdin.readline().strip()
    # Fetched on first use and again for an unknown kid (rotation), as upstream JWKS clients do.
    Verifier.jwks = jwt.PyJWKClient(jwks_url, cache_keys=False, cache_jwk_set=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
