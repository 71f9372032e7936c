#!/usr/bin/env python3
"""The worker of stage 9: `python3 -u /app/worker.py`, the web image with another command.

It consumes the job stream (jobs.py) in the consumer group `workers` under its own name (the
container's hostname, which is what `X-Worker` shows), one message at a time:

  1. its own pending messages first (a worker restarted after a kill resumes its jobs),
  2. then messages another consumer took and left idle for CLAIM_IDLE_MS (that worker died
     mid-job: XAUTOCLAIM hands them over, and the attempt counter says so),
  3. then new messages (XREADGROUP >, blocking a second at most).

The work is recorded before the message is acknowledged: `running` with this worker, the
work (JOB_SECONDS of it: the job says how long "resizing the photo" takes), `done` with the
result, and only then XACK + XDEL. A worker killed at any point loses nothing: before the
`done` record the message is still pending and is redelivered; after it, the redelivered
message finds the job done and is just acknowledged, so a job is never counted twice. While
it works a worker re-claims its message every HEARTBEAT seconds, so a long job is not taken
from a live worker. SIGTERM lets the job in hand finish, then the worker exits.
"""

import hashlib
import json
import os
import signal
import sys
import threading
import time

import app
import jobs

HOSTNAME = app.HOSTNAME
CLAIM_IDLE_MS = int(os.environ.get("CLAIM_IDLE_MS", "5000") or 5000)
HEARTBEAT = 1.0            # seconds between re-claims of the message in hand
MAX_ATTEMPTS = 5           # a job delivered this often without finishing is marked failed
ALIVE_FILE = "/tmp/worker-alive"   # touched every loop; the healthcheck reads its age
PRESENCE_TTL = 10          # seconds a worker's presence key outlives its last loop

stopping = threading.Event()


def alive(r=None):
    """Touches the healthcheck's file and, given the queue, this worker's presence key there
    (`scale-queue-stats` counts them as consumers: the group's own consumer entries outlive
    their workers, and a blocking read that finds nothing does not refresh their idle time)."""
    with open(ALIVE_FILE, "w") as f:
        f.write("%d\n" % time.time())
    if r is not None:
        r.set(jobs.PRESENCE + HOSTNAME, "1", ex=PRESENCE_TTL)


def log(msg):
    app.log("worker %s: %s" % (HOSTNAME, msg))


def next_message(r, own_first):
    """(entry id, fields, how it came) or None after waiting about a second."""
    if own_first:
        got = r.xreadgroup(jobs.GROUP, HOSTNAME, {jobs.STREAM: "0"}, count=1)
        entries = got[0][1] if got else []
        if entries:
            return entries[0] + ("own pending",)
        return None
    claimed = r.xautoclaim(jobs.STREAM, jobs.GROUP, HOSTNAME, CLAIM_IDLE_MS, start_id="0-0", count=1)
    entries = claimed[1] if len(claimed) > 1 else []
    if entries:
        return entries[0] + ("claimed from an idle worker",)
    got = r.xreadgroup(jobs.GROUP, HOSTNAME, {jobs.STREAM: ">"}, count=1, block=1000)
    entries = got[0][1] if got else []
    return entries[0] + ("new",) if entries else None


def finish(r, entry):
    """Acknowledge and delete: the stream's length stays the number of unfinished jobs."""
    pipe = r.pipeline(transaction=True)
    pipe.xack(jobs.STREAM, jobs.GROUP, entry)
    pipe.xdel(jobs.STREAM, entry)
    pipe.execute()


def heartbeat(r, entry, done):
    """Keeps the message in hand ours (its idle time near 0) until `done` is set."""
    while not done.wait(HEARTBEAT):
        try:
            r.xclaim(jobs.STREAM, jobs.GROUP, HOSTNAME, 0, [entry], justid=True)
            alive(r)
        except Exception as e:
            log("heartbeat failed: %s" % e)


def work(store, job, seconds, kind):
    """The job itself: sleeping stands in for resizing a photo (it keeps the machine idle);
    the result is a digest that shows which job it was."""
    time.sleep(seconds)
    digest = hashlib.sha256(("%s-%d" % (kind, job)).encode()).hexdigest()[:16]
    return {"thumbnail": digest, "by": HOSTNAME}


def process(store, r, entry, fields, how):
    raw = fields.get(b"job") if fields else None
    if raw is None:  # deleted or malformed: nothing to do
        return finish(r, entry)
    job = int(raw)

    def start(cur):
        cur.execute(
            "UPDATE jobs SET status = 'running', worker = %s, attempts = attempts + 1"
            " WHERE id = %s AND status NOT IN ('done', 'failed') RETURNING seconds, attempts, kind",
            (HOSTNAME, job),
        )
        return cur.fetchone()

    row = store._run(store.url, 5.0, start)
    if row is None:
        log("job %d is already finished (%s message); acknowledging it" % (job, how))
        return finish(r, entry)
    seconds, attempts, kind = row
    if attempts > MAX_ATTEMPTS:
        store._run(store.url, 5.0, lambda cur: cur.execute("UPDATE jobs SET status = 'failed' WHERE id = %s", (job,)))
        log("job %d failed %d times; marked failed" % (job, attempts - 1))
        return finish(r, entry)
    log("job %d started (%s message, attempt %d, %.1fs of work)" % (job, how, attempts, seconds))
    done = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(r, entry, done), daemon=True)
    beat.start()
    try:
        result = work(store, job, seconds, kind)
    finally:
        done.set()
        beat.join()

    def record(cur):
        cur.execute(
            "UPDATE jobs SET status = 'done', worker = %s, result = %s, done_at = now()"
            " WHERE id = %s AND status <> 'done'",
            (HOSTNAME, json.dumps(result), job),
        )

    store._run(store.url, 5.0, record)
    finish(r, entry)
    log("job %d done" % job)


def prepare(store, r):
    """Waits (while not stopping) until the queue and the jobs table are there."""
    while not stopping.is_set():
        try:
            jobs.ensure_group(r)
            store._run(store.url, 5.0, jobs.ensure_schema)
            return True
        except Exception as e:
            log("waiting for the queue and the database: %s" % e)
            alive()
            stopping.wait(1.0)
    return False


def main():
    if not (jobs.JOBS_URL and app.DATABASE_URL):
        sys.stderr.write("worker.py needs JOBS_URL (the queue) and DATABASE_URL (the job records)\n")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    store = app.PostgresStore(app.DATABASE_URL, "")
    r = jobs.client()
    alive()
    if not prepare(store, r):
        return 0
    log("consuming %s in group %s (idle messages claimed after %d ms)" % (jobs.STREAM, jobs.GROUP, CLAIM_IDLE_MS))
    own_first = True
    while not stopping.is_set():
        try:
            alive(r)
            got = next_message(r, own_first)
            if got is None:
                own_first = False
                continue
            entry, fields, how = got
            process(store, r, entry, fields, how)
        except Exception as e:
            # Nothing was acknowledged: the message stays pending with this worker and is
            # read again first.
            log("%s: %s; retrying" % (type(e).__name__, e))
            own_first = True
            stopping.wait(1.0)
    try:
        r.delete(jobs.PRESENCE + HOSTNAME)  # no longer a consumer
    except Exception:
        pass
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
