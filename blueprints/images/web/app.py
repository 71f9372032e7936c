#!/usr/bin/env python3
"""The demo web server of the `scale` stage ladder.

It serves the user profile from "Scale From Zero To Millions Of Users" and says, in
response headers, which web server answered (X-Served-By), which database server the data
came from (X-Db-Node) and whether that server was a primary or a replica (X-Db-Role).

Storage:
  * DATABASE_URL unset  -> SQLite in $DATA_DIR/app.db: the database lives on the web server
                           itself (stage 1, "single server"), X-Db-Role: embedded.
  * DATABASE_URL set    -> PostgreSQL. Writes (and the start-up seed) go to DATABASE_URL;
                           reads go to DATABASE_READ_URL when set, and fall back to
                           DATABASE_URL when no replica answers.

Only the Python standard library and psycopg2 are used.
"""

import json
import os
import re
import select
import signal
import socket
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOSTNAME = socket.gethostname()
APP_VERSION = os.environ.get("APP_VERSION", "1") or "1"
PORT = int(os.environ.get("PORT", "8000"))
DATA_DIR = os.environ.get("DATA_DIR", "/data") or "/data"
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
DATABASE_READ_URL = os.environ.get("DATABASE_READ_URL", "").strip()

REQUEST_BUDGET = 2.8       # seconds of database work one request may spend, in total
REPLICA_BUDGET = 1.0       # of which at most this much on the read replica
FIRST_GENERATED_ID = 13    # user 12 is the book's; generated ids start after it
MAX_BODY = 1 << 20

# The user of the book's figure, key order as printed there.
SEED_USER = {
    "id": 12,
    "firstName": "John",
    "lastName": "Smith",
    "address": {
        "streetAddress": "21 2nd Street",
        "city": "New York",
        "state": "NY",
        "postalCode": 10021,
    },
    "phoneNumbers": ["212 555-1234", "646 555-4567"],
}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def log(msg):
    sys.stdout.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stdout.flush()


class DbUnavailable(Exception):
    """No database answered in time."""


class Conflict(Exception):
    pass


# --------------------------------------------------------------------------- SQLite


class SqliteStore:
    kind = "sqlite"

    def __init__(self, data_dir):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "app.db")

    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=REQUEST_BUDGET, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = %d" % int(REQUEST_BUDGET * 1000))
        return conn

    def describe(self):
        return "sqlite %s" % self.path

    def init(self):
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)"
            )
            conn.execute(
                "INSERT INTO users (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (SEED_USER["id"], compact(SEED_USER)),
            )
        finally:
            conn.close()

    def ping(self):
        conn = self._connect()
        try:
            conn.execute("SELECT 1").fetchone()
        finally:
            conn.close()
        return HOSTNAME, "embedded"

    def get(self, uid):
        conn = self._connect()
        try:
            row = conn.execute("SELECT doc FROM users WHERE id = ?", (uid,)).fetchone()
        finally:
            conn.close()
        return (row[0] if row else None), HOSTNAME, "embedded"

    def insert(self, doc_obj, explicit_id):
        conn = self._connect()
        try:
            for _ in range(10):
                if explicit_id is None:
                    (mx,) = conn.execute("SELECT MAX(id) FROM users").fetchone()
                    uid = max((mx or 0) + 1, FIRST_GENERATED_ID)
                    obj = dict(id=uid, **doc_obj)
                else:
                    uid, obj = explicit_id, doc_obj
                text = compact(obj)
                cur = conn.execute(
                    "INSERT INTO users (id, doc) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                    (uid, text),
                )
                if cur.rowcount == 1:
                    return text, HOSTNAME, "embedded"
                if explicit_id is not None:
                    raise Conflict("user %d already exists" % uid)
            raise DbUnavailable("could not allocate an id")
        finally:
            conn.close()


# --------------------------------------------------------------------------- PostgreSQL

_tls = threading.local()

# Name lookups are bounded too. When the last read replica goes away its network alias stops
# existing, and the engine's DNS then asks upstream resolvers that an internal network cannot
# reach: a plain lookup would hang for seconds, stall every read and fail the health checks.
DNS_TIMEOUT = 0.5          # seconds one lookup may take
DNS_NEGATIVE_TTL = 2.0     # a name that did not resolve is not asked again for this long
_dns_failures = {}
_dns_lock = threading.Lock()


def resolve(host):
    """The IPv4/IPv6 address of host, or DbUnavailable within DNS_TIMEOUT."""
    now = time.monotonic()
    with _dns_lock:
        until = _dns_failures.get(host, 0)
    if until > now:
        raise DbUnavailable("%s did not resolve a moment ago" % host)
    result = {}

    def lookup():
        try:
            result["addr"] = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
        except OSError as e:
            result["error"] = e

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(DNS_TIMEOUT)
    if "addr" in result:
        return result["addr"]
    with _dns_lock:
        _dns_failures[host] = time.monotonic() + DNS_NEGATIVE_TTL
    raise DbUnavailable("%s does not resolve (%s)" % (host, result.get("error", "timed out")))


def url_host(url):
    """The host part of postgres://user:pass@host:port/db."""
    m = re.match(r"^[a-z]+://(?:[^@/]*@)?(\[[^\]]+\]|[^:/?]+)", url)
    return m.group(1).strip("[]") if m else None


def _pg_wait(conn):
    """psycopg2 wait callback: like the default one, but gives up at this thread's deadline,
    so a paused, partitioned or half-dead server never makes a request hang."""
    import psycopg2
    from psycopg2 import extensions

    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        remaining = getattr(_tls, "deadline", time.monotonic() + 5) - time.monotonic()
        if remaining <= 0:
            raise psycopg2.OperationalError("timed out waiting for the database")
        if state == extensions.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == extensions.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)
        else:
            raise psycopg2.OperationalError("bad poll state %r" % state)


NODE_SQL = (
    "COALESCE(NULLIF(current_setting('cluster_name'), ''), host(inet_server_addr()), 'local'),"
    " pg_is_in_recovery()"
)


class PostgresStore:
    kind = "postgres"

    def __init__(self, url, read_url):
        import psycopg2
        from psycopg2 import extensions

        self.psycopg2 = psycopg2
        self.url = url
        self.read_url = read_url or None
        extensions.set_wait_callback(_pg_wait)

    def describe(self):
        def strip(u):  # never log the password
            return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", u)

        s = "postgres write=%s" % strip(self.url)
        if self.read_url:
            s += " read=%s" % strip(self.read_url)
        return s

    def _run(self, url, budget, fn):
        """Connect to url, run fn(cursor) in autocommit mode, close. Bounded by budget."""
        psycopg2 = self.psycopg2
        old = getattr(_tls, "deadline", None)
        _tls.deadline = time.monotonic() + budget
        conn = None
        try:
            host = url_host(url)
            extra = {"hostaddr": resolve(host)} if host else {}
            conn = psycopg2.connect(url, connect_timeout=2, application_name="scale-web-" + HOSTNAME, **extra)
            conn.autocommit = True
            with conn.cursor() as cur:
                return fn(cur)
        except psycopg2.Error as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DbUnavailable(msg) from e
        finally:
            _tls.deadline = old
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass

    @staticmethod
    def _role(in_recovery):
        return "replica" if in_recovery else "primary"

    def _read(self, fn):
        """Run a read on the replica, falling back to the primary."""
        start = time.monotonic()
        if self.read_url:
            try:
                return self._run(self.read_url, REPLICA_BUDGET, fn)
            except DbUnavailable as e:
                log("read replica did not answer (%s); reading from the primary" % e)
        remaining = max(REQUEST_BUDGET - (time.monotonic() - start), 1.0)
        return self._run(self.url, remaining, fn)

    def init(self):
        seed = compact(SEED_USER)

        def fn(cur):
            # The schema and the seed are idempotent: do not wait for a synchronous replica
            # (there may be none yet), or the app would never become ready.
            cur.execute("SET synchronous_commit TO local")
            cur.execute("CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, doc TEXT NOT NULL)")
            cur.execute(
                "INSERT INTO users (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                (SEED_USER["id"], seed),
            )

        self._run(self.url, 5.0, fn)

    def ping(self):
        def fn(cur):
            cur.execute("SELECT " + NODE_SQL)
            node, rec = cur.fetchone()
            return node, self._role(rec)

        return self._read(fn)

    def get(self, uid):
        def fn(cur):
            cur.execute("SELECT (SELECT doc FROM users WHERE id = %s), " + NODE_SQL, (uid,))
            doc, node, rec = cur.fetchone()
            return doc, node, self._role(rec)

        return self._read(fn)

    def insert(self, doc_obj, explicit_id):
        def fn(cur):
            cur.execute("SELECT " + NODE_SQL)
            node, rec = cur.fetchone()
            for _ in range(10):
                if explicit_id is None:
                    cur.execute("SELECT MAX(id) FROM users")
                    (mx,) = cur.fetchone()
                    uid = max((mx or 0) + 1, FIRST_GENERATED_ID)
                    obj = dict(id=uid, **doc_obj)
                else:
                    uid, obj = explicit_id, doc_obj
                text = compact(obj)
                cur.execute(
                    "INSERT INTO users (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                    (uid, text),
                )
                if cur.rowcount == 1:
                    return text, node, self._role(rec)
                if explicit_id is not None:
                    raise Conflict("user %d already exists" % uid)
            raise DbUnavailable("could not allocate an id")

        return self._run(self.url, REQUEST_BUDGET, fn)


# --------------------------------------------------------------------------- HTTP


class State:
    store = None
    ready = threading.Event()


USER_PATH = re.compile(r"^/users/([^/]+)/?$")


class Handler(BaseHTTPRequestHandler):
    timeout = 5  # an idle client connection cannot hold a thread (or shutdown) for long

    # ---- plumbing

    def version_string(self):
        return "scale-web/" + APP_VERSION

    def _reply(self, code, body, db=("none", "none"), extra=None):
        if not isinstance(body, (bytes, str)):
            body = compact(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._db = db
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", HOSTNAME)
        self.send_header("X-App-Version", APP_VERSION)
        self.send_header("X-Db-Node", db[0])
        self.send_header("X-Db-Role", db[1])
        self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        # Errors raised by http.server itself (bad request line, unknown method) as JSON too.
        self.close_connection = True
        try:
            self._reply(code, {"error": message or self.responses.get(code, ("error",))[0]})
        except OSError:
            pass

    def log_request(self, code="-", size="-"):
        took = (time.monotonic() - getattr(self, "_t0", time.monotonic())) * 1000
        node, role = getattr(self, "_db", ("none", "none"))
        log(
            '%s "%s" %s %.1fms db=%s/%s'
            % (self.client_address[0], self.requestline, code, took, node, role)
        )

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    def _not_ready(self):
        self._reply(503, {"error": "database not initialised yet"})

    # ---- routes

    def do_GET(self):
        self._t0 = time.monotonic()
        path = self.path.split("?", 1)[0]
        store = State.store
        if path == "/healthz":
            if not State.ready.is_set():
                return self._reply(503, {"status": "starting"})
            try:
                node, role = store.ping()
            except DbUnavailable as e:
                return self._reply(503, {"status": "unavailable", "error": str(e)})
            except Exception as e:  # sqlite errors and the like
                return self._reply(503, {"status": "unavailable", "error": str(e)})
            return self._reply(200, {"status": "ok"}, (node, role))
        if path == "/":
            return self._reply(
                200,
                {
                    "service": "scale demo web",
                    "served_by": HOSTNAME,
                    "version": APP_VERSION,
                    "endpoints": ["GET /users/{id}", "POST /users", "GET /healthz"],
                },
            )
        m = USER_PATH.match(path)
        if m:
            raw = m.group(1)
            if not re.fullmatch(r"[0-9]{1,18}", raw):
                return self._reply(400, {"error": "invalid user id %r" % raw})
            uid = int(raw)
            if not State.ready.is_set():
                return self._not_ready()
            try:
                doc, node, role = store.get(uid)
            except Exception as e:
                return self._reply(503, {"error": "database unavailable: %s" % e})
            if doc is None:
                return self._reply(404, {"error": "user %d not found" % uid}, (node, role))
            return self._reply(200, doc, (node, role))
        return self._reply(404, {"error": "no route for %s" % path})

    do_HEAD = do_GET

    def do_POST(self):
        self._t0 = time.monotonic()
        path = self.path.split("?", 1)[0]
        if path.rstrip("/") != "/users":
            return self._reply(404, {"error": "no route for POST %s" % path})
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._reply(400, {"error": "bad Content-Length"})
        if length > MAX_BODY:
            return self._reply(413, {"error": "body larger than %d bytes" % MAX_BODY})
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return self._reply(400, {"error": "invalid JSON: %s" % e})
        if not isinstance(obj, dict):
            return self._reply(400, {"error": "body must be a JSON object"})
        explicit = None
        if "id" in obj:
            uid = obj["id"]
            if isinstance(uid, bool) or not isinstance(uid, int) or uid < 1 or uid >= 10**18:
                return self._reply(400, {"error": "id must be a positive integer"})
            explicit = uid
        if not State.ready.is_set():
            return self._not_ready()
        try:
            text, node, role = State.store.insert(obj, explicit)
        except Conflict as e:
            return self._reply(409, {"error": str(e)})
        except Exception as e:
            return self._reply(503, {"error": "database unavailable: %s" % e})
        return self._reply(201, text, (node, role), {"Location": "/users/%d" % json.loads(text)["id"]})

    def _method_not_allowed(self):
        self._t0 = time.monotonic()
        self._reply(405, {"error": "method %s not allowed" % self.command}, extra={"Allow": "GET, HEAD, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed


class Server(ThreadingHTTPServer):
    daemon_threads = False  # on shutdown, wait for requests in flight
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128


def initialise(store):
    """Create the schema and seed user 12; retry until the database takes it."""
    start = time.monotonic()
    attempt = 0
    warned = False
    last_error = None
    while not State.stopping.is_set():
        attempt += 1
        try:
            store.init()
            State.ready.set()
            log("database ready (%s) after %d attempt(s)" % (store.describe(), attempt))
            return
        except Exception as e:
            waited = time.monotonic() - start
            if str(e) != last_error or attempt % 10 == 0:
                log("waiting for the database (%s): %s" % (store.describe(), e))
                last_error = str(e)
            if waited > 60 and not warned:
                log("still no database after %.0fs; /healthz stays 503, retrying every 5s" % waited)
                warned = True
            State.stopping.wait(1.0 if waited < 60 else 5.0)


State.stopping = threading.Event()


def main():
    if DATABASE_URL:
        State.store = PostgresStore(DATABASE_URL, DATABASE_READ_URL)
    else:
        State.store = SqliteStore(DATA_DIR)

    server = Server(("0.0.0.0", PORT), Handler)

    def on_signal(signum, frame):
        if State.stopping.is_set():
            return
        State.stopping.set()
        log("received %s: no new connections, finishing requests in flight" % signal.Signals(signum).name)
        # shutdown() blocks until serve_forever() returns, so not from this (main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threading.Thread(target=initialise, args=(State.store,), daemon=True).start()
    log(
        "scale demo web %s listening on 0.0.0.0:%d as %s, storage: %s"
        % (APP_VERSION, PORT, HOSTNAME, State.store.describe())
    )
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # closes the listening socket, joins request threads
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
