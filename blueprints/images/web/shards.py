"""Stage 11: the users sharded over several PostgreSQL clusters, and moved between them online.

A user lives in bucket `id % 64`. The shard map, a table in shard 0 (the cluster the app's
DATABASE_URL names, `db`), says which shard holds each bucket:

    shard_map(bucket int primary key, shard text)      -- 'db', 'db-s1', 'db-s2', ...

A shard named S is reached as S-primary (writes) and S-replica (reads), the aliases every
`kind: postgres` service has, with DATABASE_URL's user, password and database. Without a
shard_map table the app is the stage-7 app: every user in `db`.

Writes (POST, PUT /users): in one transaction on shard 0, `SELECT shard ... FOR SHARE` on the
bucket's map row, write to that shard, commit. Ids come from one sequence in shard 0
(`shard_user_ids`), so they are unique across shards.

Moves (`python3 /app/shards.py move FROM TO B1,B2,...`, run by `scale apply` in a web
container): for each bucket, `SELECT ... FOR UPDATE` on its map row (so it waits for the
writes in flight and holds back new ones), copy the bucket's rows FROM → TO (replacing what TO
had of that bucket), switch the map row to TO, commit; then delete the bucket from FROM.
A write that waited sees the new map row and goes to TO: no write is lost, none lands twice.
If the map row already names another shard, the move only deletes what FROM still has (a
move interrupted after its switch), so every step can simply run again.

Reads use the map as cached for MAP_TTL seconds; a miss reads the map again and asks the
bucket's current shard's primary, so a read that raced a move still finds the user.
Every answer about a user says where it lives: `X-Db-Shard`.
"""

import json
import re
import sys
import threading
import time

BUCKETS = 64
MAP_TTL = 1.0          # seconds a web server trusts its copy of the map
LOCK_TIMEOUT = "3s"    # how long a write may wait for a bucket that is being moved

MAP_EXISTS = "SELECT to_regclass('public.shard_map') IS NOT NULL"
MAP_ROWS = "SELECT bucket, shard FROM shard_map ORDER BY bucket"
SHARD_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

_tls = threading.local()
A = None  # the app module (app.py), set by wrap() or main()


def bucket_of(uid):
    return uid % BUCKETS


def header_for(path):
    """The X-Db-Shard header of this request: the shard the store used, or (a cache hit)
    the shard the map names for /users/ID; nothing when the users are not sharded."""
    shard = getattr(_tls, "shard", None)
    _tls.shard = None
    if shard is None and STORE is not None:
        m = re.match(r"^/users/([0-9]{1,18})$", path.split("?", 1)[0])
        try:
            current = STORE.shard_map() if m else None
        except A.DbUnavailable:
            current = STORE.cached_map()
        if m and current:
            shard = current.get(bucket_of(int(m.group(1))))
    return {"X-Db-Shard": shard} if shard else {}


def with_host(url, host):
    """url with its host replaced (postgres://u:p@db-primary:5432/app -> ...@host:5432/app)."""
    return re.sub(r"^([a-z]+://(?:[^@/]*@)?)(\[[^\]]+\]|[^:/?]+)", lambda m: m.group(1) + host, url, count=1)


class ShardedStore:
    """The app's store (PostgresStore's interface) over the shards; the plain store while
    there is no shard map."""

    kind = "postgres"

    def __init__(self, base):
        self.base = base
        host = A.url_host(base.url) or "db-primary"
        # Shard 0's name: DATABASE_URL names its primary alias, `<service>-primary`.
        self.home = host[: -len("-primary")] if host.endswith("-primary") else host
        self.psycopg2 = base.psycopg2
        self._stores = {}
        self._map = None
        self._map_at = -MAP_TTL
        # Whether the map (or its absence) was ever read: until then a lost primary is an error.
        self._map_known = False
        self._lock = threading.Lock()

    def describe(self):
        return self.base.describe() + " (sharded when shard 0 holds a shard map)"

    def __getattr__(self, name):
        # Everything beyond the users (the job records' `_run` and `url`, stage 9) lives in
        # shard 0, the plain store: only the users are sharded.
        return getattr(self.base, name)

    # ---- the map

    def store(self, shard):
        if shard == self.home or not SHARD_NAME.match(shard):
            return self.base
        with self._lock:
            if shard not in self._stores:
                url = with_host(self.base.url, shard + "-primary")
                self._stores[shard] = A.PostgresStore(url, with_host(self.base.url, shard + "-replica"))
            return self._stores[shard]

    def cached_map(self):
        return self._map

    def shard_map(self, fresh=False):
        """bucket -> shard, or None when the users are not sharded; re-read every MAP_TTL."""
        now = time.monotonic()
        if not fresh and now - self._map_at < MAP_TTL:
            return self._map

        def fn(cur):
            cur.execute(MAP_EXISTS)
            if not cur.fetchone()[0]:
                return None
            cur.execute(MAP_ROWS)
            return {b: s for b, s in cur.fetchall()}

        # The map is read on shard 0's primary. While it is lost (stage 8's dc-a, stage 4's
        # primary), the last answer holds, "no map" included: reads go on from the replicas
        # instead of every one failing after a second spent asking.
        try:
            self._map = self.base._run(self.base.url, 1.0, fn)
            self._map_known = True
        except A.DbUnavailable:
            if not self._map_known:
                raise
        self._map_at = now
        return self._map

    # ---- the app's store interface

    def init(self):
        if self.shard_map(fresh=True) is None:
            return self.base.init()
        try:
            self.insert(dict((k, v) for k, v in A.SEED_USER.items() if k != "id"), A.SEED_USER["id"])
        except A.Conflict:
            pass

    def ping(self):
        return self.base.ping()

    def _read(self, uid, read):
        """read(store) on the bucket's shard; a miss asks again after a fresh look at the map,
        on that shard's primary (the user may just have moved, or not be on a replica yet)."""
        m = self.shard_map()
        if m is None:
            return read(self.base)
        shard = m.get(bucket_of(uid), self.home)
        answer = read(self.store(shard))
        if answer[0] is None:
            fresh = self.shard_map(fresh=True)
            if fresh is None:  # the map was just dropped: every user is back in shard 0
                return read(self.base)
            shard = fresh.get(bucket_of(uid), self.home)
            primary = self.store(shard)
            answer = read(A.PostgresStore(primary.url, ""))
        _tls.shard = shard
        return answer

    def get(self, uid):
        return self._read(uid, lambda s: s.get(uid))

    def get_fresh(self, uid, min_lsn):
        return self._read(uid, lambda s: s.get_fresh(uid, min_lsn))

    def _locked_write(self, uid, write):
        """write(store) on the bucket's shard while holding the bucket's map row (FOR SHARE),
        so no move of the bucket runs in between."""

        def fn(cur):
            cur.execute("BEGIN")
            cur.execute("SET LOCAL lock_timeout = '%s'" % LOCK_TIMEOUT)
            cur.execute("SELECT shard FROM shard_map WHERE bucket = %s FOR SHARE", (bucket_of(uid),))
            row = cur.fetchone()
            shard = row[0] if row else self.home
            result = write(self.store(shard))
            cur.execute("COMMIT")
            _tls.shard = shard
            return result

        return self.base._run(self.base.url, A.REQUEST_BUDGET + 3.0, fn)

    def _next_id(self):
        def fn(cur):
            cur.execute("SELECT nextval('shard_user_ids')")
            return cur.fetchone()[0]

        return self.base._run(self.base.url, A.REQUEST_BUDGET, fn)

    def _unsharded_now(self):
        """After a write failed: whether the map just went away (a stage without shards)."""
        try:
            return self.shard_map(fresh=True) is None
        except A.DbUnavailable:
            return False

    def insert(self, doc_obj, explicit_id):
        if self.shard_map() is None:
            return self.base.insert(doc_obj, explicit_id)
        try:
            return self._sharded_insert(doc_obj, explicit_id)
        except A.DbUnavailable:
            if self._unsharded_now():
                return self.base.insert(doc_obj, explicit_id)
            raise

    def _sharded_insert(self, doc_obj, explicit_id):
        for _ in range(10):
            uid = explicit_id if explicit_id is not None else self._next_id()
            obj = A.with_id(uid, doc_obj)
            try:
                return self._locked_write(uid, lambda s: s.insert(obj, uid))
            except A.Conflict:
                if explicit_id is not None:
                    raise
        raise A.DbUnavailable("could not allocate an id")

    def update(self, uid, doc_obj):
        if self.shard_map() is None:
            return self.base.update(uid, doc_obj)
        try:
            return self._locked_write(uid, lambda s: s.update(uid, doc_obj))
        except A.DbUnavailable:
            if self._unsharded_now():
                return self.base.update(uid, doc_obj)
            raise


STORE = None


def wrap(store, app_module):
    """The app's hook: a PostgresStore becomes a ShardedStore (the same until a map exists)."""
    global A, STORE
    A = app_module
    if getattr(store, "kind", "") != "postgres":
        return store
    STORE = ShardedStore(store)
    return STORE


def report():
    """GET /shards: the map per shard, each shard's users and its primary's commits (the
    hot-spot lesson: a celebrity's bucket makes one shard's commits climb)."""
    if STORE is None:
        return 404, {"error": "no database tier"}
    m = STORE.shard_map(fresh=True)
    names = sorted(set((m or {}).values()) | {STORE.home})
    shards = {}
    for name in names:
        store = STORE.store(name)

        def fn(cur):
            cur.execute("SELECT count(*) FROM users")
            users = cur.fetchone()[0]
            cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            return users, cur.fetchone()[0]

        try:
            users, commits = store._run(store.url, 2.0, fn)
            buckets = sum(1 for s in (m or {}).values() if s == name) if m else BUCKETS
            shards[name] = {"buckets": buckets, "users": users, "commits": commits}
        except A.DbUnavailable as e:
            shards[name] = {"error": str(e)}
    return 200, {"sharded": m is not None, "buckets": BUCKETS, "shards": shards}


# --------------------------------------------------------------------------- moves (scale apply)


def _tx(store, fn, budget=30.0):
    """fn(cur) inside one transaction on store's primary."""

    def run(cur):
        cur.execute("BEGIN")
        result = fn(cur)
        cur.execute("COMMIT")
        return result

    return store._run(store.url, budget, run)


def cmd_init(directory):
    """Creates the map (every bucket in shard 0, where an unsharded stage keeps every user)
    and the id sequence, past every id in use."""
    base = STORE.base

    def fn(cur):
        cur.execute("CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, doc TEXT NOT NULL)")
        cur.execute("CREATE TABLE IF NOT EXISTS shard_map (bucket INT PRIMARY KEY, shard TEXT NOT NULL)")
        cur.execute(
            "INSERT INTO shard_map SELECT b, %s FROM generate_series(0, %s) b ON CONFLICT (bucket) DO NOTHING",
            (directory, BUCKETS - 1),
        )
        cur.execute("CREATE SEQUENCE IF NOT EXISTS shard_user_ids")
        cur.execute(
            "SELECT setval('shard_user_ids', GREATEST((SELECT last_value FROM shard_user_ids),"
            " (SELECT COALESCE(MAX(id), 0) FROM users), %s))",
            (A.FIRST_GENERATED_ID - 1,),
        )

    _tx(base, fn)
    # Every web server must have seen the map (and so write under its locks) before the
    # first bucket moves: a write that still thinks "no map" would slip past the move.
    time.sleep(MAP_TTL * 2 + 0.5)
    return {"step": "init", "directory": directory, "buckets": BUCKETS}


def _ensure_table(store):
    def fn(cur):
        cur.execute("CREATE TABLE IF NOT EXISTS users (id BIGINT PRIMARY KEY, doc TEXT NOT NULL)")

    store._run(store.url, 10.0, fn)


def _move_bucket(source, target, frm, to, bucket):
    """One bucket FROM -> TO under its map row's lock: (copied, switched, deleted)."""
    copied = switched = 0

    def locked(cur):
        nonlocal copied, switched
        cur.execute("BEGIN")
        cur.execute("SELECT shard FROM shard_map WHERE bucket = %s FOR UPDATE", (bucket,))
        row = cur.fetchone()
        if row is None:
            raise A.DbUnavailable("bucket %d is not in the shard map" % bucket)
        if row[0] == frm:

            def read(c):
                c.execute("SELECT id, doc FROM users WHERE id %% %s = %s", (BUCKETS, bucket))
                return c.fetchall()

            rows = source._run(source.url, 30.0, read)

            def write(c):
                c.execute("DELETE FROM users WHERE id %% %s = %s", (BUCKETS, bucket))
                for uid, doc in rows:
                    c.execute("INSERT INTO users (id, doc) VALUES (%s, %s)", (uid, doc))

            _tx(target, write)
            cur.execute("UPDATE shard_map SET shard = %s WHERE bucket = %s", (to, bucket))
            copied, switched = len(rows), 1
        cur.execute("COMMIT")
        return row[0]

    owner = STORE.base._run(STORE.base.url, 60.0, locked)
    if owner == frm and not switched:
        return copied, switched, 0

    def delete(c):
        c.execute("DELETE FROM users WHERE id %% %s = %s", (BUCKETS, bucket))
        return c.rowcount

    return copied, switched, source._run(source.url, 30.0, delete)


def _patiently(fn, attempts=5):
    """fn(), again after a pause while a database does not answer: every step of a move can
    run twice (a loaded machine makes lookups and connects time out now and then)."""
    for attempt in range(attempts):
        try:
            return fn()
        except A.DbUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)


def cmd_move(frm, to, buckets):
    source, target = STORE.store(frm), STORE.store(to)
    _patiently(lambda: _ensure_table(target))
    totals = [0, 0, 0]
    for b in buckets:
        for i, n in enumerate(_patiently(lambda: _move_bucket(source, target, frm, to, b))):
            totals[i] += n
    copied, switched, deleted = totals
    return {"step": "move", "from": frm, "to": to, "copied": copied, "switched": switched, "deleted": deleted}


def cmd_drop_map(directory):
    """Back to one database: only once every bucket is in shard 0."""

    def fn(cur):
        cur.execute("SELECT count(*) FROM shard_map WHERE shard <> %s", (directory,))
        away = cur.fetchone()[0]
        if away:
            raise A.DbUnavailable("%d bucket(s) are not in %s yet" % (away, directory))
        cur.execute("DROP TABLE shard_map")
        cur.execute("DROP SEQUENCE IF EXISTS shard_user_ids")

    _tx(STORE.base, fn)
    return {"step": "drop-map", "directory": directory}


def main(argv):
    import app

    if not app.DATABASE_URL:
        sys.stderr.write("shards.py needs DATABASE_URL (shard 0)\n")
        return 1
    # A move is no request with a client waiting: give lookups time, and retry at once.
    app.DNS_TIMEOUT, app.DNS_NEGATIVE_TTL = 5.0, 0.0
    wrap(app.PostgresStore(app.DATABASE_URL, ""), app)
    try:
        if len(argv) == 2 and argv[0] == "init" and SHARD_NAME.match(argv[1]):
            out = _patiently(lambda: cmd_init(argv[1]))
        elif len(argv) == 4 and argv[0] == "move" and SHARD_NAME.match(argv[1]) and SHARD_NAME.match(argv[2]):
            buckets = [int(b) for b in argv[3].split(",") if b]
            if any(b < 0 or b >= BUCKETS for b in buckets):
                sys.stderr.write("buckets are 0..%d\n" % (BUCKETS - 1))
                return 2
            out = cmd_move(argv[1], argv[2], buckets)
        elif len(argv) == 2 and argv[0] == "drop-map" and SHARD_NAME.match(argv[1]):
            out = _patiently(lambda: cmd_drop_map(argv[1]))
        else:
            sys.stderr.write("usage: shards.py init SHARD0 | move FROM TO B1,B2,... | drop-map SHARD0\n")
            return 2
    except (A.DbUnavailable, ValueError) as e:
        sys.stderr.write("%s\n" % e)
        return 1
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, "/app")
    sys.exit(main(sys.argv[1:]))
