"""The Nexus COS sandbox gateway: a small HTTP front of the platform database.

Endpoints (JSON only):
  GET /health        200 {"status": "ok", "database": "ok"} when `SELECT 1` answers,
                     else 503 {"status": "degraded", "database": "<error>"}
  GET /api/v1/flags  200 {key: value, ...} of all rows of nexus_feature_flags,
                     503 {"error": ..., "detail": ...} when the database fails
  anything else      404 (405 for methods other than GET)

Database settings come from the libpq environment (PGHOST, PGPORT, PGDATABASE,
PGUSER, PGPASSFILE), which sandbox/up.sh sets. Listens on 127.0.0.1:8081 unless
NEXUS_GATEWAY_HOST / NEXUS_GATEWAY_PORT say otherwise.
"""

from __future__ import annotations

import json
import logging
import os
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

CONNECT_TIMEOUT_S = 2
LOG = logging.getLogger("nexus-gateway")


def connect() -> psycopg.Connection[tuple[Any, ...]]:
    """A fresh connection per request: simple, and a restarted database is
    picked up at once without any pool state to go stale."""
    return psycopg.connect(connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)


def describe(exc: BaseException) -> str:
    """One line of error text (libpq messages span several lines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def check_database() -> str | None:
    """None when the database answers `SELECT 1`, else the error text."""
    try:
        with connect() as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as exc:
        return describe(exc)
    return None


def read_flags() -> dict[str, Any]:
    with connect() as conn:
        rows = conn.execute("SELECT key, value FROM nexus_feature_flags ORDER BY key").fetchall()
    # psycopg decodes jsonb into Python values already.
    return {str(key): value for key, value in rows}


class Handler(BaseHTTPRequestHandler):
    server_version = "nexus-gateway"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health":
            error = check_database()
            if error is None:
                self.send_json(HTTPStatus.OK, {"status": "ok", "database": "ok"})
            else:
                self.send_json(
                    HTTPStatus.SERVICE_UNAVAILABLE, {"status": "degraded", "database": error}
                )
        elif path == "/api/v1/flags":
            try:
                flags = read_flags()
            except psycopg.Error as exc:
                self.send_json(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    {"error": "database unavailable", "detail": describe(exc)},
                )
            else:
                self.send_json(HTTPStatus.OK, flags)
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found", "path": path})

    def method_not_allowed(self) -> None:
        self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed"})

    do_POST = do_PUT = do_PATCH = do_DELETE = method_not_allowed

    def send_json(self, status: HTTPStatus, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # One short line per request to the log file, instead of stderr noise.
        LOG.info("%s %s", self.address_string(), format % args)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host = os.environ.get("NEXUS_GATEWAY_HOST", "127.0.0.1")
    port = int(os.environ.get("NEXUS_GATEWAY_PORT", "8081"))
    server = ThreadingHTTPServer((host, port), Handler)
    LOG.info(
        "listening on http://%s:%d (database %s:%s/%s)",
        host,
        port,
        os.environ.get("PGHOST", "?"),
        os.environ.get("PGPORT", "?"),
        os.environ.get("PGDATABASE", "?"),
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
