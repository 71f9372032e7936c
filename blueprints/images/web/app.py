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

Cache (stage 5): with CACHE_URL set (redis://cache:6379/0), users are read through Redis
(X-Cache: HIT / MISS / BYPASS when the cache is down) and a POST or PUT evicts the user
before it answers; see class Cache for why a read never stores a stale document.

Static content (stage 6, what the CDN edge caches): /index.html links a stylesheet, a script
and an image under versioned URLs, /static/v<ASSET_VERSION>/..., with Cache-Control max-age.

Sessions (stage 7, "stateless web tier"): POST /login sets a `scale_session` cookie and
GET /session counts the requests of that session. With SESSION_URL set (redis://sessions:6379/0)
the counter lives in the shared store, so it keeps climbing whichever server answers (and
across a killed or replaced server); without it each server keeps its own sessions in memory,
as stages 1-6 do, and a request that lands on another server starts counting from 1 again.

Only the Python standard library, psycopg2 and (with CACHE_URL or SESSION_URL) redis-py are used.
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

import obs  # stage 10: /metrics and the central log (obs.py)
import jobs  # stage 9: POST /jobs, GET /jobs/{id} through the queue (jobs.py)
import geo  # stage 8: X-Dc
import shards  # stage 11: users sharded over several PostgreSQL clusters (shards.py)

HOSTNAME = socket.gethostname()
APP_VERSION = os.environ.get("APP_VERSION", "1") or "1"
PORT = int(os.environ.get("PORT", "8000"))
DATA_DIR = os.environ.get("DATA_DIR", "/data") or "/data"
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
DATABASE_READ_URL = os.environ.get("DATABASE_READ_URL", "").strip()
CACHE_URL = os.environ.get("CACHE_URL", "").strip()        # redis://cache:6379/0 from stage 5 on
CACHE_TTL = int(os.environ.get("CACHE_TTL", "30") or 30)   # seconds a cached user lives
SESSION_URL = os.environ.get("SESSION_URL", "").strip()    # redis://sessions:6379/0 at stage 7
SESSION_TTL = int(os.environ.get("SESSION_TTL", "1800") or 1800)  # idle seconds a session lives

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
    obs.forward(msg)


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
                    return text, HOSTNAME, "embedded", None
                if explicit_id is not None:
                    raise Conflict("user %d already exists" % uid)
            raise DbUnavailable("could not allocate an id")
        finally:
            conn.close()

    def update(self, uid, doc_obj):
        """Replaces user uid's document: (text, node, role, None), or None if there is no such user."""
        text = compact(with_id(uid, doc_obj))
        conn = self._connect()
        try:
            cur = conn.execute("UPDATE users SET doc = ? WHERE id = ?", (text, uid))
            return (text, HOSTNAME, "embedded", None) if cur.rowcount == 1 else None
        finally:
            conn.close()

    def get_fresh(self, uid, min_lsn):
        # one file, no replicas: every read sees every write that returned
        return self.get(uid)


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


# Where a node's WAL is: the replayed position on a replica, the written one on a primary.
LSN_SQL = (
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text"
)


def parse_lsn(text):
    """'16/B374D848' -> an integer that orders like the LSN; None stays None."""
    if not text:
        return None
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def with_id(uid, doc_obj):
    """doc_obj with "id": uid first (the order POST /users stores too)."""
    obj = {"id": uid}
    obj.update((k, v) for k, v in doc_obj.items() if k != "id")
    return obj


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
                    return text, node, self._role(rec), self._written_lsn(cur)
                if explicit_id is not None:
                    raise Conflict("user %d already exists" % uid)
            raise DbUnavailable("could not allocate an id")

        return self._run(self.url, REQUEST_BUDGET, fn)

    @staticmethod
    def _written_lsn(cur):
        """The primary's WAL position just after a write committed (autocommit): a replica
        that has replayed this far sees the write."""
        cur.execute("SELECT pg_current_wal_lsn()::text")
        return parse_lsn(cur.fetchone()[0])

    def update(self, uid, doc_obj):
        """Replaces user uid's document on the primary: (text, node, role, lsn), or None if
        there is no such user."""
        text = compact(with_id(uid, doc_obj))

        def fn(cur):
            cur.execute("UPDATE users SET doc = %s WHERE id = %s", (text, uid))
            if cur.rowcount != 1:
                return None
            cur.execute("SELECT " + NODE_SQL)
            node, rec = cur.fetchone()
            return text, node, self._role(rec), self._written_lsn(cur)

        return self._run(self.url, REQUEST_BUDGET, fn)

    def get_fresh(self, uid, min_lsn):
        """Like get, but the answer includes every write up to min_lsn (the position of the
        last write to this user that went through the cache): a replica that has not replayed
        that far yet is passed over for the primary, so a cache miss right after a write never
        reads (and caches) the old document from a lagging replica."""
        if not min_lsn:
            return self.get(uid)

        def fn(cur):
            cur.execute("SELECT (SELECT doc FROM users WHERE id = %s), " + NODE_SQL + ", " + LSN_SQL, (uid,))
            doc, node, rec, lsn = cur.fetchone()
            return doc, node, self._role(rec), parse_lsn(lsn)

        start = time.monotonic()
        if self.read_url:
            try:
                doc, node, role, lsn = self._run(self.read_url, REPLICA_BUDGET, fn)
                if lsn is not None and lsn >= min_lsn:
                    return doc, node, role
                log("%s has not replayed a recent write to user %d yet; reading from the primary" % (node, uid))
            except DbUnavailable as e:
                log("read replica did not answer (%s); reading from the primary" % e)
        remaining = max(REQUEST_BUDGET - (time.monotonic() - start), 1.0)
        doc, node, role, _ = self._run(self.url, remaining, fn)
        return doc, node, role


# --------------------------------------------------------------------------- cache (stage 5)

CACHE_CONNECT_TIMEOUT = 0.25   # seconds to open a connection to the cache
CACHE_OP_TIMEOUT = 0.5         # seconds one cache command may take
CACHE_RETRY_AFTER = 1.0        # after a failure, requests skip the cache (BYPASS) this long

# Fill the cache only if no write happened since the read began (compare-and-set on the
# user's write marker; see Cache).
# One round trip per read: the document (a hit) or the user's write marker (a miss), and the
# outcome counted in scale:cache:hits / scale:cache:misses, which `scale status` reports as the
# hit ratio (Redis's own keyspace counters would also count the marker lookups of misses).
LOOKUP_AND_COUNT = """
local doc = redis.call('GET', KEYS[1])
if doc then
  redis.call('INCR', KEYS[3])
  return {1, doc}
end
redis.call('INCR', KEYS[4])
return {0, redis.call('GET', KEYS[2]) or ''}
"""
STAT_KEYS = ("scale:cache:hits", "scale:cache:misses")  # no expiry: never evicted (volatile-ttl)

FILL_IF_UNCHANGED = """
local marker = redis.call('GET', KEYS[1])
local token = ''
if marker then token = string.match(marker, '^(%S+)') or '' end
if token == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""


class CacheDown(Exception):
    """The cache did not answer in time (or was skipped because it just failed)."""


class Cache:
    """A read-through cache of user documents in Redis (CACHE_URL=redis://cache:6379/0).

    Reads: GET user:<id>; on a miss, read the database and store the answer for CACHE_TTL s.
    Writes: the database first, then *before the response*: evict user:<id>.

    Eviction alone leaves a race: a read that began before the write can read the old row,
    then store it in the cache *after* the write evicted the entry, and the old document
    would be served until its TTL ends. So every write also replaces the user's write marker
    user:<id>:w with a fresh random token (and the primary's WAL position after the commit).
    A read notes the token before it reads the database, and fills the cache only if the
    token is still the same (one Lua script: compare-and-set). Any write in between changes
    the token, and the stale fill is dropped. Tokens are random, never reused, so an expired
    and re-created marker cannot look unchanged.

    The marker's WAL position also covers replica lag: a miss just after a write reads a
    replica only if it has replayed that far, else the primary (PostgresStore.get_fresh).

    If the cache is down the request goes to the database (X-Cache: BYPASS), after at most
    one bounded attempt (name lookup 0.5 s, connect 0.25 s, command 0.5 s); after a failure
    the cache is skipped for 1 s. An eviction that failed is remembered and done before this
    server uses the cache again. Left uncovered (bounded by the TTL): a cache that another
    web server can still reach while this one cannot evict in it.
    """

    def __init__(self, url, ttl):
        import redis

        self.redis = redis
        m = re.match(r"^redis://(?:[^@/]*@)?([^:/]+)(?::([0-9]+))?(?:/([0-9]+))?/?$", url)
        if not m:
            raise ValueError("CACHE_URL must look like redis://host:6379/0, not %r" % url)
        self.host, self.port, self.db = m.group(1), int(m.group(2) or 6379), int(m.group(3) or 0)
        self.url = url
        self.ttl = ttl
        self.marker_ttl = ttl + 60  # outlives every entry filled under it
        self.clients = {}
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.down = False
        self.pending = {}  # uid -> lsn of evictions that failed

    def describe(self):
        return "redis %s:%d/%d ttl=%ds" % (self.host, self.port, self.db, self.ttl)

    def _client(self):
        with self.lock:
            if time.monotonic() < self.down_until:
                raise CacheDown("skipped for a moment after a failure")
        try:
            addr = resolve(self.host)
        except DbUnavailable as e:
            self._failed(e)
        with self.lock:
            client = self.clients.get(addr)
            if client is None:
                client = self.redis.Redis(
                    host=addr,
                    port=self.port,
                    db=self.db,
                    socket_connect_timeout=CACHE_CONNECT_TIMEOUT,
                    socket_timeout=CACHE_OP_TIMEOUT,
                    decode_responses=True,
                )
                self.clients = {addr: client}  # a new address: the old one's pool is dropped
        return client

    def _flush_pending(self, client):
        """Does the evictions that failed earlier, before anything is read from the cache."""
        with self.lock:
            pending, self.pending = self.pending, {}
        try:
            for uid, lsn in list(pending.items()):
                self._evict(client, uid, lsn)
                del pending[uid]
        finally:
            if pending:
                with self.lock:
                    for uid, lsn in pending.items():
                        self.pending[uid] = max(lsn, self.pending.get(uid, 0))

    def _failed(self, e):
        with self.lock:
            self.down_until = time.monotonic() + CACHE_RETRY_AFTER
            was_down, self.down = self.down, True
        if not was_down:
            log("cache %s is not answering (%s): reading from the database (X-Cache: BYPASS)" % (self.url, e))
        raise CacheDown(str(e))

    def _ok(self):
        if self.down:
            with self.lock:
                was_down, self.down = self.down, False
            if was_down:
                log("cache %s answers again" % self.url)

    def _call(self, fn):
        client = self._client()
        try:
            self._flush_pending(client)
            result = fn(client)
        except self.redis.RedisError as e:
            self._failed(e)
        self._ok()
        return result

    @staticmethod
    def _keys(uid):
        return "user:%d" % uid, "user:%d:w" % uid

    def lookup(self, uid):
        """(cached document or None, write token, WAL position of the last write or 0)."""
        data_key, marker_key = self._keys(uid)
        hit, value = self._call(lambda c: c.eval(LOOKUP_AND_COUNT, 4, data_key, marker_key, *STAT_KEYS))
        if hit == 1:
            return value, "", 0
        token, _, lsn = (value or "").partition(" ")
        return None, token, int(lsn or 0)

    def fill(self, uid, token, doc):
        """Stores doc unless a write changed the user's token since lookup; True if stored."""
        data_key, marker_key = self._keys(uid)
        stored = self._call(lambda c: c.eval(FILL_IF_UNCHANGED, 2, marker_key, data_key, token, doc, self.ttl))
        return stored == 1

    def _evict(self, client, uid, lsn):
        data_key, marker_key = self._keys(uid)
        pipe = client.pipeline(transaction=True)
        pipe.set(marker_key, "%s %d" % (os.urandom(8).hex(), lsn or 0), ex=self.marker_ttl)
        pipe.delete(data_key)
        pipe.execute()

    def evict(self, uid, lsn):
        """After a write to uid committed: new token, and the entry deleted. If the cache does
        not answer, the eviction is remembered and raised as CacheDown."""
        try:
            self._call(lambda c: self._evict(c, uid, lsn))
        except CacheDown:
            with self.lock:
                self.pending[uid] = max(lsn or 0, self.pending.get(uid, 0))
            raise


# --------------------------------------------------------------------------- sessions (stage 7)

SESSION_COOKIE = "scale_session"
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class SessionsDown(Exception):
    """The shared session store did not answer: the request fails (503) rather than forget
    the session, since a session, unlike a cached user, exists nowhere else."""


class MemorySessions:
    """Stages 1-6: sessions in this server's memory. Another server does not know them, and
    a restarted server has forgotten them all; a request with an unknown id starts at 0."""

    kind = "memory"

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}

    def describe(self):
        return "in memory (this server only)"

    def create(self, sid, user):
        with self.lock:
            self.counts[sid] = 0

    def hit(self, sid):
        with self.lock:
            self.counts[sid] = self.counts.get(sid, 0) + 1
            return self.counts[sid]


class RedisSessions:
    """Stage 7: sessions in a shared Redis (SESSION_URL), one hash per session with an idle
    expiry of SESSION_TTL seconds; HINCRBY makes the count atomic across servers."""

    kind = "redis"

    def __init__(self, url, ttl):
        import redis

        m = re.match(r"^redis://(?:[^@/]*@)?([^:/]+)(?::([0-9]+))?(?:/([0-9]+))?/?$", url)
        if not m:
            raise ValueError("SESSION_URL must look like redis://host:6379/0, not %r" % url)
        self.redis = redis
        self.host, self.port, self.db = m.group(1), int(m.group(2) or 6379), int(m.group(3) or 0)
        self.ttl = ttl
        self.lock = threading.Lock()
        self.clients = {}

    def describe(self):
        return "redis %s:%d/%d ttl=%ds" % (self.host, self.port, self.db, self.ttl)

    def _call(self, fn):
        try:
            addr = resolve(self.host)
        except DbUnavailable as e:
            raise SessionsDown(str(e))
        with self.lock:
            client = self.clients.get(addr)
            if client is None:
                client = self.redis.Redis(host=addr, port=self.port, db=self.db, socket_connect_timeout=0.5,
                                          socket_timeout=1.0, decode_responses=True)
                self.clients = {addr: client}
        try:
            return fn(client)
        except self.redis.RedisError as e:
            raise SessionsDown(str(e))

    def create(self, sid, user):
        def fn(c):
            pipe = c.pipeline(transaction=True)
            pipe.hset("session:" + sid, mapping={"user": user, "count": 0, "created_by": HOSTNAME})
            pipe.expire("session:" + sid, self.ttl)
            pipe.execute()

        self._call(fn)

    def hit(self, sid):
        """The session's new count, or None if the store does not know it (expired, or never
        created: a client must log in)."""

        def fn(c):
            key = "session:" + sid
            if not c.exists(key):
                return None
            pipe = c.pipeline(transaction=True)
            pipe.hincrby(key, "count", 1)
            pipe.expire(key, self.ttl)
            return pipe.execute()[0]

        return self._call(fn)


# --------------------------------------------------------------------------- HTTP


class State:
    store = None
    cache = None  # a Cache when CACHE_URL is set (stage 5 on)
    sessions = None  # MemorySessions, or RedisSessions when SESSION_URL is set (stage 7)
    ready = threading.Event()


USER_PATH = re.compile(r"^/users/([^/]+)/?$")

# ---- the static part of the site (stage 6: what the CDN edge caches)

ASSET_VERSION = os.environ.get("ASSET_VERSION", "1") or "1"
ASSET_MAX_AGE = int(os.environ.get("ASSET_MAX_AGE", "86400") or 86400)  # a versioned URL never changes
PAGE_MAX_AGE = int(os.environ.get("PAGE_MAX_AGE", "5") or 5)            # the page names the current version
STATIC_PATH = re.compile(r"^/static/v([0-9]{1,9})/(app\.css|app\.js|logo\.svg)$")
STATIC_TYPES = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "logo.svg": "image/svg+xml",
}


def static_asset(version, name):
    """The content of asset `name` at `version`: each version looks a little different, so a
    browser shows which one it got."""
    hue = (int(version) * 67) % 360
    if name == "app.css":
        return (
            "/* scale demo, asset version %s */\n"
            "body { font-family: sans-serif; margin: 2em; }\n"
            "h1 { color: hsl(%d, 60%%, 35%%); }\n" % (version, hue)
        )
    if name == "app.js":
        return (
            "// scale demo, asset version %s\n"
            "document.getElementById('version').textContent = 'assets v%s';\n" % (version, version)
        )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
        '<rect width="120" height="40" rx="6" fill="hsl(%d, 60%%, 45%%)"/>'
        '<text x="60" y="26" font-size="16" text-anchor="middle" fill="white">v%s</text></svg>\n' % (hue, version)
    )


def index_page():
    base = "/static/v%s" % ASSET_VERSION
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>shop</title>\n"
        '<link rel="stylesheet" href="%s/app.css"></head>\n'
        '<body><h1>shop</h1><img src="%s/logo.svg" alt="logo">\n'
        '<p>served by %s, <span id="version">assets v%s</span></p>\n'
        '<script src="%s/app.js"></script></body></html>\n' % (base, base, HOSTNAME, ASSET_VERSION, base)
    )


class Handler(BaseHTTPRequestHandler):
    timeout = 5  # an idle client connection cannot hold a thread (or shutdown) for long

    # ---- plumbing

    def version_string(self):
        return "scale-web/" + APP_VERSION

    def _reply(self, code, body, db=("none", "none"), extra=None, content_type="application/json"):
        if not isinstance(body, (bytes, str)):
            body = compact(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._db = db
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", HOSTNAME)
        self.send_header("X-App-Version", APP_VERSION)
        self.send_header("X-Db-Node", db[0])
        self.send_header("X-Db-Role", db[1])
        for k, v in geo.HEADERS.items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        for k, v in shards.header_for(self.path).items():
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
        headers = getattr(self, "headers", None)
        rid = headers.get("X-Request-Id", "-") if headers else "-"  # stamped by the load balancer
        log(
            '%s "%s" %s %.1fms db=%s/%s rid=%s'
            % (self.client_address[0], self.requestline, code, took, node, role, rid)
        )
        obs.observe(self.command or "-", getattr(self, "path", "") or "", code, took / 1000)

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
        if path == "/metrics":
            return self._reply(200, obs.render(), content_type="text/plain; version=0.0.4")
        if path == "/":
            return self._reply(
                200,
                {
                    "service": "scale demo web",
                    "served_by": HOSTNAME,
                    "version": APP_VERSION,
                    "endpoints": ["GET /users/{id}", "POST /users", "POST /login", "GET /session", "GET /healthz"],
                },
            )
        m = USER_PATH.match(path)
        if m:
            uid = self._user_id(m.group(1))
            if uid is None:
                return
            if not State.ready.is_set():
                return self._not_ready()
            if State.cache is not None:
                return self._get_user_cached(uid)
            try:
                doc, node, role = store.get(uid)
            except Exception as e:
                return self._reply(503, {"error": "database unavailable: %s" % e})
            if doc is None:
                return self._reply(404, {"error": "user %d not found" % uid}, (node, role))
            return self._reply(200, doc, (node, role))
        if path == "/session":
            return self._session()
        if path == "/shards":
            return self._reply(*shards.report())
        if path == "/index.html":
            cache_control = {"Cache-Control": "public, max-age=%d" % PAGE_MAX_AGE}
            return self._reply(200, index_page(), extra=cache_control, content_type="text/html; charset=utf-8")
        m = STATIC_PATH.match(path)
        if m:
            version, name = m.group(1), m.group(2)
            cache_control = {"Cache-Control": "public, max-age=%d, immutable" % ASSET_MAX_AGE}
            return self._reply(200, static_asset(version, name), extra=cache_control, content_type=STATIC_TYPES[name])
        if jobs.route(self, "GET", path, store):
            return None
        return self._reply(404, {"error": "no route for %s" % path})

    def _cookie_session(self):
        """The session id of the request's cookie, or None."""
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and SESSION_ID.match(value):
                return value
        return None

    def _session(self):
        """GET /session: this session's request count, one more each time."""
        sid = self._cookie_session()
        store = State.sessions
        if sid is None:
            return self._reply(401, {"error": "no session: POST /login first"})
        try:
            count = store.hit(sid)
        except SessionsDown as e:
            return self._reply(503, {"error": "session store unavailable: %s" % e})
        if count is None:
            return self._reply(401, {"error": "session expired or unknown: POST /login again"})
        body = {"session": sid[:8], "count": count, "served_by": HOSTNAME, "store": store.kind}
        return self._reply(200, body, extra={"X-Session-Store": store.kind})

    def _login(self):
        """POST /login: a new session (body optional, {"user": "..."}), its id in a cookie."""
        try:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            user = str(json.loads(raw.decode("utf-8")).get("user", "guest")) if raw else "guest"
        except (UnicodeDecodeError, ValueError, AttributeError):
            user = "guest"
        sid = os.urandom(16).hex()
        store = State.sessions
        try:
            store.create(sid, user[:64])
        except SessionsDown as e:
            return self._reply(503, {"error": "session store unavailable: %s" % e})
        cookie = "%s=%s; Path=/; HttpOnly; SameSite=Lax" % (SESSION_COOKIE, sid)
        body = {"session": sid[:8], "user": user[:64], "served_by": HOSTNAME, "store": store.kind}
        return self._reply(200, body, extra={"Set-Cookie": cookie, "X-Session-Store": store.kind})

    def _user_id(self, raw):
        """The user id in the path, or None after answering 400."""
        if not re.fullmatch(r"[0-9]{1,18}", raw):
            self._reply(400, {"error": "invalid user id %r" % raw})
            return None
        return int(raw)

    def _get_user_cached(self, uid):
        """GET /users/{id} through the cache: X-Cache HIT (no database asked), MISS (read
        from the database and stored unless a write came in between) or BYPASS (the cache
        is down: straight from the database)."""
        cache = State.cache
        try:
            doc, token, min_lsn = cache.lookup(uid)
        except CacheDown:
            doc, outcome = None, "BYPASS"
        else:
            if doc is not None:
                return self._reply(200, doc, extra={"X-Cache": "HIT"})
            outcome = "MISS"
        try:
            if outcome == "MISS":
                doc, node, role = State.store.get_fresh(uid, min_lsn)
            else:
                doc, node, role = State.store.get(uid)
        except Exception as e:
            return self._reply(503, {"error": "database unavailable: %s" % e}, extra={"X-Cache": outcome})
        if doc is None:  # not cached: a user created later must not be hidden by a stored 404
            return self._reply(404, {"error": "user %d not found" % uid}, (node, role), {"X-Cache": outcome})
        if outcome == "MISS":
            try:
                cache.fill(uid, token, doc)
            except CacheDown:
                pass
        return self._reply(200, doc, (node, role), {"X-Cache": outcome})

    def _evict(self, uid, lsn):
        """After a committed write: the cache forgets the user before the response goes out.
        The X-Cache header of the write: EVICTED, or BYPASS (the cache did not answer; the
        eviction is retried before this server reads the cache again)."""
        if State.cache is None:
            return {}
        try:
            State.cache.evict(uid, lsn)
            return {"X-Cache": "EVICTED"}
        except CacheDown:
            return {"X-Cache": "BYPASS"}

    do_HEAD = do_GET

    def _json_body(self):
        """The request's JSON object, or None after answering 400/413."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reply(400, {"error": "bad Content-Length"})
            return None
        if length > MAX_BODY:
            self._reply(413, {"error": "body larger than %d bytes" % MAX_BODY})
            return None
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self._reply(400, {"error": "invalid JSON: %s" % e})
            return None
        if not isinstance(obj, dict):
            self._reply(400, {"error": "body must be a JSON object"})
            return None
        return obj

    def do_POST(self):
        self._t0 = time.monotonic()
        path = self.path.split("?", 1)[0]
        if path.rstrip("/") == "/login":
            return self._login()
        if jobs.route(self, "POST", path, State.store):
            return None
        if path.rstrip("/") != "/users":
            return self._reply(404, {"error": "no route for POST %s" % path})
        obj = self._json_body()
        if obj is None:
            return
        explicit = None
        if "id" in obj:
            uid = obj["id"]
            if isinstance(uid, bool) or not isinstance(uid, int) or uid < 1 or uid >= 10**18:
                return self._reply(400, {"error": "id must be a positive integer"})
            explicit = uid
        if not State.ready.is_set():
            return self._not_ready()
        try:
            text, node, role, lsn = State.store.insert(obj, explicit)
        except Conflict as e:
            return self._reply(409, {"error": str(e)})
        except Exception as e:
            return self._reply(503, {"error": "database unavailable: %s" % e})
        uid = json.loads(text)["id"]
        extra = {"Location": "/users/%d" % uid}
        extra.update(self._evict(uid, lsn))
        return self._reply(201, text, (node, role), extra)

    def do_PUT(self):
        """PUT /users/{id}: replaces an existing user's document (404 if there is none)."""
        self._t0 = time.monotonic()
        path = self.path.split("?", 1)[0]
        m = USER_PATH.match(path)
        if not m:
            return self._method_not_allowed()
        uid = self._user_id(m.group(1))
        if uid is None:
            return
        obj = self._json_body()
        if obj is None:
            return
        if "id" in obj and obj["id"] != uid:
            return self._reply(400, {"error": "the body's id %r is not the path's %d" % (obj["id"], uid)})
        if not State.ready.is_set():
            return self._not_ready()
        try:
            written = State.store.update(uid, obj)
        except Exception as e:
            return self._reply(503, {"error": "database unavailable: %s" % e})
        if written is None:
            return self._reply(404, {"error": "user %d not found" % uid})
        text, node, role, lsn = written
        return self._reply(200, text, (node, role), self._evict(uid, lsn))

    def _method_not_allowed(self):
        self._t0 = time.monotonic()
        allow = "GET, HEAD, POST" if self.command != "PUT" else "GET, HEAD, PUT"
        self._reply(405, {"error": "method %s not allowed" % self.command}, extra={"Allow": allow})

    do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed


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
        State.store = shards.wrap(PostgresStore(DATABASE_URL, DATABASE_READ_URL), sys.modules[__name__])
    else:
        State.store = SqliteStore(DATA_DIR)
    if CACHE_URL:
        State.cache = Cache(CACHE_URL, CACHE_TTL)
    State.sessions = RedisSessions(SESSION_URL, SESSION_TTL) if SESSION_URL else MemorySessions()

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
        + (", cache: %s" % State.cache.describe() if State.cache else "")
        + ", sessions: %s" % State.sessions.describe()
    )
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # closes the listening socket, joins request threads
    log("stopped")
    return 0


# --------------------------------------------------------------------------- data migration


def migrate(direction):
    """`app.py migrate to-postgres|to-sqlite`: copies every user between the embedded SQLite
    file ($DATA_DIR/app.db) and the data tier (DATABASE_URL), replacing what the target has
    under the same id (an upsert), so running it again, or after an interruption, gives the
    same result. `scale apply` runs it when stepping between stages 1 and 2. Prints
    {"users": N}; exit 1 with the reason on stderr if a side cannot be read or written."""
    if not DATABASE_URL:
        sys.stderr.write("migrate needs DATABASE_URL (the data tier)\n")
        return 1
    sqlite = SqliteStore(DATA_DIR)
    sqlite.init()
    pg = PostgresStore(DATABASE_URL, "")
    for attempt in range(30):
        try:
            pg.init()
            break
        except DbUnavailable as e:
            if attempt == 29:
                sys.stderr.write("the data tier does not answer: %s\n" % e)
                return 1
            time.sleep(1)

    def pg_rows(cur):
        cur.execute("SELECT id, doc FROM users ORDER BY id")
        return cur.fetchall()

    if direction == "to-postgres":
        conn = sqlite._connect()
        try:
            rows = conn.execute("SELECT id, doc FROM users ORDER BY id").fetchall()
        finally:
            conn.close()

        def write(cur):
            for uid, doc in rows:
                cur.execute(
                    "INSERT INTO users (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
                    (uid, doc),
                )

        pg._run(pg.url, 60.0, write)
    elif direction == "to-sqlite":
        rows = pg._run(pg.url, 60.0, pg_rows)
        conn = sqlite._connect()
        try:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO users (id, doc) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc", rows
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
    else:
        sys.stderr.write("usage: app.py migrate to-postgres|to-sqlite\n")
        return 2
    print(compact({"users": len(rows)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "migrate":
        sys.exit(migrate(sys.argv[2]))
    sys.exit(main())
