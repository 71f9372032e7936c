"""Jobs through a message queue (stage 9, the book's "Message queue" section).

The web server is the producer: `POST /jobs` (alias `POST /photos`, the book's example of
work too slow for a request: resizing a photo) records the job in PostgreSQL as `queued`,
publishes its id on a Redis stream and answers 202 with the id at once. A worker (worker.py,
the same image with another command) consumes the stream in a consumer group, does the work,
records `done` and only then acknowledges the message. `GET /jobs/{id}` reads the record
from the primary: `queued`, `running` or `done`, with the worker in `X-Worker`; `GET /jobs`
counts them by status.

Why these places:
  * The job's state lives in PostgreSQL, not in the queue: it survives the queue, the
    workers and stepping back to a stage without them (07 -> 09 -> 07 keeps the table).
  * The queue is a Redis stream with a consumer group (Redis from Debian, as the cache):
    a message handed to a worker stays in the group's pending list until that worker
    acknowledges it, so a worker killed mid-job leaves it there and another worker claims
    it once it has been idle for CLAIM_IDLE_MS (worker.py). An acknowledged message is
    deleted, so the stream's length is the queue depth: waiting plus in flight.

Only redis-py and psycopg2 (Debian packages), as the rest of the app.
"""

import json
import os
import re

JOBS_URL = os.environ.get("JOBS_URL", "").strip()   # redis://queue:6379/0 at stage 9
STREAM = "scale:jobs"
GROUP = "workers"
PRESENCE = "scale:consumer:"   # + worker name: set by each live worker, expires after 10 s
MAX_SECONDS = 60.0          # the longest job a client may ask for
SCHEMA_LOCK = 909         # pg_advisory_lock key of the schema change
JOB_PATH = re.compile(r"^/jobs/([0-9]{1,18})/?$")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id BIGSERIAL PRIMARY KEY,"
    " kind TEXT NOT NULL,"
    " seconds DOUBLE PRECISION NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'queued',"
    " worker TEXT,"
    " attempts INT NOT NULL DEFAULT 0,"
    " result TEXT,"
    " created_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    " done_at TIMESTAMPTZ)"
)


class QueueDown(Exception):
    """The queue did not take or give a message in time."""


_client = None
_schema_ready = False


def client():
    """One redis-py client per process (it pools connections and is thread-safe)."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(JOBS_URL, socket_timeout=2, socket_connect_timeout=1)
    return _client


def ensure_group(r):
    """The stream and its consumer group, created from the stream's start (id 0), so messages
    published before the first worker ever started are still delivered."""
    import redis

    try:
        r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def ensure_schema(cur):
    """The jobs table, once per process. CREATE TABLE IF NOT EXISTS is not safe against a
    concurrent one (both may try to insert the type), so the servers take turns on a lock."""
    global _schema_ready
    if not _schema_ready:
        cur.execute("SET synchronous_commit TO local")
        cur.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            cur.execute(SCHEMA)
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        _schema_ready = True


def route(handler, method, path, store):
    """Answers a jobs request and returns True, or returns False (not a jobs path, or no
    queue configured) so the caller's routing goes on."""
    path = path.rstrip("/") or "/"
    if not JOBS_URL or not (path in ("/jobs", "/photos") or JOB_PATH.match(path)):
        return False
    if getattr(store, "kind", None) != "postgres":
        handler._reply(503, {"error": "jobs need the data tier (DATABASE_URL)"})
        return True
    if method == "POST" and path in ("/jobs", "/photos"):
        submit(handler, store, "photo" if path == "/photos" else "job")
    elif method == "GET" and path == "/jobs":
        summary(handler, store)
    elif method == "GET" and JOB_PATH.match(path):
        status(handler, store, int(JOB_PATH.match(path).group(1)))
    else:
        handler._reply(405, {"error": "method %s not allowed on %s" % (method, path)})
    return True


def submit(handler, store, kind):
    """POST /jobs {"seconds": 2}: 202 {"id": N, "status": "queued"} once the job is both
    recorded and on the queue; 503 (and no record) when either does not answer."""
    body = handler._json_body()
    if body is None:
        return
    seconds = body.get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_SECONDS:
        return handler._reply(400, {"error": "seconds must be a number from 0 to %g" % MAX_SECONDS})

    def insert(cur):
        ensure_schema(cur)
        cur.execute("INSERT INTO jobs (kind, seconds) VALUES (%s, %s) RETURNING id", (kind, float(seconds)))
        return cur.fetchone()[0]

    try:
        job = store._run(store.url, 2.5, insert)
    except Exception as e:
        return handler._reply(503, {"error": "database unavailable: %s" % e})
    try:
        r = client()
        ensure_group(r)
        r.xadd(STREAM, {"job": str(job)})
    except Exception as e:
        # Not on the queue: no record either, so every 202 is a job that will be done.
        try:
            store._run(store.url, 2.0, lambda cur: cur.execute("DELETE FROM jobs WHERE id = %s", (job,)))
        except Exception:
            pass
        return handler._reply(503, {"error": "queue unavailable: %s" % e})
    body = {"id": job, "status": "queued", "kind": kind, "seconds": seconds}
    return handler._reply(202, body, extra={"Location": "/jobs/%d" % job})


def status(handler, store, job):
    """GET /jobs/{id}: the record, read from the primary (a replica may not have it yet)."""

    def read(cur):
        ensure_schema(cur)
        cur.execute(
            "SELECT status, worker, attempts, kind, seconds, result FROM jobs WHERE id = %s", (job,)
        )
        return cur.fetchone()

    try:
        row = store._run(store.url, 2.5, read)
    except Exception as e:
        return handler._reply(503, {"error": "database unavailable: %s" % e})
    if row is None:
        return handler._reply(404, {"error": "job %d not found" % job})
    state, worker, attempts, kind, seconds, result = row
    body = {"id": job, "status": state, "worker": worker, "attempts": attempts, "kind": kind, "seconds": seconds}
    if result is not None:
        body["result"] = json.loads(result)
    extra = {"X-Job-Status": state}
    if worker:
        extra["X-Worker"] = worker
    return handler._reply(200, body, extra=extra)


def summary(handler, store):
    """GET /jobs: how many jobs are in each status."""

    def count(cur):
        ensure_schema(cur)
        cur.execute("SELECT status, count(*) FROM jobs GROUP BY status")
        return dict(cur.fetchall())

    try:
        counts = store._run(store.url, 2.5, count)
    except Exception as e:
        return handler._reply(503, {"error": "database unavailable: %s" % e})
    body = {s: counts.get(s, 0) for s in ("queued", "running", "done", "failed")}
    body["total"] = sum(counts.values())
    return handler._reply(200, body)
