#!/usr/bin/env bash
# Brings up the same 10-container stack with Docker Compose and with scale, side by side, and
# reports the median wall time and peak RSS of each step over N rounds:
#
#   cold apply (`up -d` / `apply --yes`), no-op apply, a one-variable change on the 6 web
#   replicas, destroy (`down` / `destroy`)
#
# then the peak RSS of one scale apply of 200 containers (4 services x 50 replicas), to show
# that memory stays flat with the size of a project.
#
#   bash bench/compose-vs-scale.sh [ROUNDS]      # default 5; needs Docker, debian:bookworm-slim
#   SCALE_BIN=target/release/scale bash bench/compose-vs-scale.sh 3   # a binary built beforehand
#   BENCH_LOGS=/tmp/logs bash bench/compose-vs-scale.sh 2   # also keep each step's output there
#
# The stack: a proxy publishing a random host port, 6 web replicas with a healthcheck, a db
# with a healthcheck and a named volume, a cache and a worker, on two networks (one
# internal), each with a 1 s stop grace period. The proxy really serves: it is HAProxy (the
# ladder's image) in front of the 6 web replicas, each a small Python HTTP server that
# answers with its hostname and GREETING and exits cleanly on SIGTERM; for scale it is a
# `kind: load-balancer` (its pool generated from the replicas), for Compose the same image
# with a configuration that finds the replicas through Docker's DNS (`server-template`).
# db, cache and worker run `sleep infinity`. Both tools wait for the same things: the proxy
# waits until web is healthy and the worker until db is healthy (depends_on conditions), and
# scale also waits for every container with a healthcheck to be healthy (it is health-gated
# by design). A change to the web replicas is rolled by scale with the policy
# `deploy.update_config` gives it (`parallelism: 2, order: start-first`: two at a time, each
# new one healthy before its old one is drained from the pool and stops) and recreated all
# at once by Compose, which ignores that policy outside Swarm. During that change (only then:
# cold apply and destroy have nothing to serve) 4 clients send requests to the proxy's
# published port one after another, from 0.5 s before the command until 1 s after it, and
# the failed ones (no answer within 2 s, or any status but 200) are counted for both tools.
set -euo pipefail

ROUNDS="${1:-5}"
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "usage: $0 [ROUNDS>0]" >&2; exit 1 ;; esac
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
IMAGE=debian:bookworm-slim

die() { echo "compose-vs-scale: $*" >&2; exit 1; }

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "$IMAGE is missing (see scripts/ensure-base-image.sh)"
# Compose v2 (`docker compose`) is the peer users compare with. Debian bookworm's
# `docker-compose` package is the old Python v1, so when the plugin is missing it is taken
# from trixie's `docker-compose` package (v2): a temporary apt source built from this machine's
# own mirror URI, `apt-get download` (nothing is installed through dpkg), the plugin unpacked
# into ~/.docker/cli-plugins, and the temporary source removed again.
install_compose_v2() {
  local uri list tmp plugin
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  list=/etc/apt/sources.list.d/compose-vs-scale-trixie.sources
  tmp=$(mktemp -d)
  echo "installing Docker Compose v2 from Debian trixie ($uri) into ~/.docker/cli-plugins..." >&2
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" >"$list"
  if apt-get update -qq && (cd "$tmp" && apt-get download -qq docker-compose/trixie); then
    dpkg-deb -x "$tmp"/docker-compose_*.deb "$tmp/root"
    plugin=$(find "$tmp/root" -type f -name docker-compose -path '*cli-plugins*' | head -1)
    [ -n "$plugin" ] || plugin=$(find "$tmp/root" -type f -name docker-compose | head -1)
    mkdir -p "$HOME/.docker/cli-plugins"
    [ -n "$plugin" ] && install -m 0755 "$plugin" "$HOME/.docker/cli-plugins/docker-compose"
  fi
  rm -f "$list"
  apt-get update -qq || true
  rm -rf "$tmp"
}
if ! docker compose version >/dev/null 2>&1; then
  install_compose_v2 || true
fi
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  die "Docker Compose v2 (\`docker compose\`) is missing and could not be installed from Debian trixie"
fi
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time for peak RSS..." >&2
  (apt-get update -qq && apt-get install -y -qq time >/dev/null) || die "/usr/bin/time is missing"
fi

# SCALE_BIN=path: measure that binary (a release build made beforehand) instead of building.
if [ -n "${SCALE_BIN:-}" ]; then
  SCALE="$SCALE_BIN"
else
  echo "building scale (release)..." >&2
  (cd "$REPO" && cargo build --release --locked --quiet --bin scale)
  SCALE="${CARGO_TARGET_DIR:-$REPO/target}/release/scale"
fi
[ -x "$SCALE" ] || die "no binary at $SCALE"

WORK="$(mktemp -d)"
TAG="$$-$(date +%s)"
CP="cvs-compose-$TAG"   # Compose project
SP="cvs-scale-$TAG"     # scale project
MP="cvs-many-$TAG"      # scale project of the 200-container run

cleanup() {
  set +e
  GREETING=hello "${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" down -v -t 1 --remove-orphans >/dev/null 2>&1
  "$SCALE" destroy --yes --volumes -p "$SP" >/dev/null 2>&1
  "$SCALE" destroy --yes --volumes -p "$MP" >/dev/null 2>&1
  for label in "com.docker.compose.project=$CP" "io.scale.project=$SP" "io.scale.project=$MP"; do
    ids=$(docker ps -aq --filter "label=$label"); [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1
    ids=$(docker network ls -q --filter "label=$label"); [ -z "$ids" ] || docker network rm $ids >/dev/null 2>&1
    ids=$(docker volume ls -q --filter "label=$label"); [ -z "$ids" ] || docker volume rm $ids >/dev/null 2>&1
  done
  docker image rm "cvs-web:$TAG" "cvs-lb:$TAG" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The images, built once before any timing and shared by both tools: `cvs-web`, a small HTTP
# server (Python's, from Debian's python3) that answers / and /healthz with its
# hostname and GREETING and exits cleanly on SIGTERM once its requests in flight are done, and
# `cvs-lb`, the ladder's HAProxy image (blueprints/images/haproxy). The rest of the stack
# (db, cache, worker) serves nothing and runs `sleep infinity`.
mkdir -p "$WORK/web"
cat >"$WORK/web/serve.py" <<'PY'
import os, signal, socket, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{socket.gethostname()} {os.environ.get('GREETING', '')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("", 8000), Handler)
server.daemon_threads = False  # shutdown waits for the requests in flight
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever(poll_interval=0.1)
server.server_close()
PY
# The healthcheck is bash alone (no Python start-up every second in each of 12 containers).
cat >"$WORK/web/healthcheck" <<'SH'
#!/bin/bash
exec 3<>/dev/tcp/127.0.0.1/8000 || exit 1
printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
read -r -t 2 status <&3 && [[ $status == *" 200 "* ]]
SH
chmod +x "$WORK/web/healthcheck"
cat >"$WORK/web/Dockerfile" <<DOCKERFILE
FROM $IMAGE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 \\
 && rm -rf /var/lib/apt/lists/*
COPY serve.py healthcheck /
EXPOSE 8000
CMD ["python3", "/serve.py"]
DOCKERFILE
WEB_IMAGE="cvs-web:$TAG"
LB_IMAGE="cvs-lb:$TAG"
echo "building the stack's images..." >&2
docker build -q -t "$WEB_IMAGE" "$WORK/web" >/dev/null || die "cannot build the web image"
docker build -q -t "$LB_IMAGE" "$REPO/blueprints/images/haproxy" >/dev/null || die "cannot build the HAProxy image"

# Compose's HAProxy: the same image and defaults as scale's generated configuration, with the
# six replicas found through Docker's DNS (the service name resolves to every replica).
cat >"$WORK/haproxy.cfg" <<'CFG'
global
    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
    hard-stop-after 30s
defaults
    mode http
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout 502 503 504
    timeout connect 2s
    timeout client 30s
    timeout server 10s
    timeout http-request 10s
resolvers docker
    nameserver dns 127.0.0.11:53
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 1s
    hold other 1s
    hold refused 1s
    hold nx 1s
    hold timeout 1s
    hold obsolete 1s
    accepted_payload_size 8192
frontend http
    bind :80
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2 resolvers docker init-addr last,libc,none
    server-template web 6 web:8000
CFG

# The parts both files share; PROXY is each tool's load balancer.
write_stack() {
  local proxy=$1
  cat <<YAML
services:
  proxy:
$proxy
    ports: ["80"]
    networks: [front, back]
    stop_grace_period: 1s
  web:
    image: $WEB_IMAGE
    scale: 6
    environment: { GREETING: "\${GREETING:-hello}" }
    networks: [back]
    healthcheck: { test: ["CMD", "/healthcheck"], interval: 1s, timeout: 10s, retries: 5, start_period: 30s }
    stop_grace_period: 1s
    deploy: { update_config: { parallelism: 2, order: start-first } }
  db:
    image: $IMAGE
    command: [sleep, infinity]
    volumes: ["data:/data"]
    networks: [back]
    healthcheck: { test: ["CMD", "true"], interval: 1s, timeout: 10s, retries: 5 }
    stop_grace_period: 1s
  cache:
    image: $IMAGE
    command: [sleep, infinity]
    networks: [back]
    stop_grace_period: 1s
  worker:
    image: $IMAGE
    command: [sleep, infinity]
    networks: [back]
    depends_on: { db: { condition: service_healthy }, cache: { condition: service_started } }
    stop_grace_period: 1s
networks:
  front: {}
  back: { internal: true }
volumes:
  data: {}
YAML
}
write_stack "    image: $LB_IMAGE
    volumes: [\"$WORK/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro\"]
    depends_on: { web: { condition: service_healthy } }" >"$WORK/compose.yaml"
{
  echo "name: cvs"
  write_stack "    kind: load-balancer
    image: $LB_IMAGE
    backends: { service: web, port: 8000 }" | sed -e 's/^    scale: 6$/    replicas: 6/'
} >"$WORK/scale.yaml"

{
  echo "name: many"
  echo "services:"
  for s in alpha bravo charlie delta; do
    printf '  %s:\n    image: %s\n    command: [sleep, infinity]\n    replicas: 50\n    stop_grace_period: 1s\n' "$s" "$IMAGE"
  done
} >"$WORK/many.yaml"

"$SCALE" validate "$WORK/scale.yaml" >/dev/null || die "the scale blueprint does not validate"
GREETING=hello "${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" config -q || die "the compose file does not validate"

# measure TOOL STEP CMD...: runs CMD with GREETING from the environment, records wall
# seconds and peak RSS (KiB) in $WORK/TOOL.STEP, fails loudly if CMD fails.
measure() {
  local tool=$1 step=$2; shift 2
  local start end
  start=$(date +%s%N)
  if ! /usr/bin/time -f '%M' -o "$WORK/rss" "$@" >"$WORK/out" 2>&1; then
    cat "$WORK/out" >&2
    die "$tool $step failed: $*"
  fi
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 )) $(cat "$WORK/rss")" >>"$WORK/$tool.$step"
  if [ -n "${BENCH_LOGS:-}" ]; then
    mkdir -p "$BENCH_LOGS" && cat "$WORK/out" >>"$BENCH_LOGS/$tool.$step.log"
  fi
}

# The client loop of the change row: 4 clients, one request at a time each on a new
# connection, against the proxy's published port, until a stop file appears (at most 120 s);
# a request fails on a connection error, a timeout (2 s) or any status but 200.
cat >"$WORK/client.py" <<'PY'
import os, sys, threading, time, urllib.request
port, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
counts = {"ok": 0, "failed": 0}
lock = threading.Lock()
def client():
    deadline = time.monotonic() + 120
    while not os.path.exists(stop) and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                good = r.status == 200 and r.read() != b""
        except Exception:
            good = False
        with lock:
            counts["ok" if good else "failed"] += 1
        if not good:
            time.sleep(0.01)
threads = [threading.Thread(target=client) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
with open(out, "w") as f:
    f.write(f"{counts['ok']} {counts['failed']}\n")
PY

# serving PORT: waits (at most 30 s) until the proxy on PORT answers 200, outside the timings.
serving() {
  for _ in $(seq 1 120); do
    python3 -c "import urllib.request as u, sys; sys.exit(0 if u.urlopen('http://127.0.0.1:$1/', timeout=2).status == 200 else 1)" \
      2>/dev/null && return 0
    sleep 0.25
  done
  die "nothing answers on 127.0.0.1:$1"
}

# with_clients TOOL PORT CMD...: runs CMD (a `measure`) while the client loop runs, then keeps
# the clients going 1 s more (what a tool leaves broken right after it returns counts too) and
# records "ok failed" in $WORK/TOOL.clients.
with_clients() {
  local tool=$1 port=$2; shift 2
  serving "$port"
  rm -f "$WORK/stop" "$WORK/counts"
  python3 "$WORK/client.py" "$port" "$WORK/stop" "$WORK/counts" &
  local pid=$!
  sleep 0.5
  "$@"
  sleep 1
  touch "$WORK/stop"
  wait "$pid" || die "the client loop failed"
  cat "$WORK/counts" >>"$WORK/$tool.clients"
}

port_of() { docker port "$1" 80/tcp | head -1 | sed 's/.*://'; }

# running LABEL: how many containers with that label run now (checked outside the timings,
# so that both tools are known to have brought up all 10).
running() { docker ps -q --filter "label=$1" | wc -l; }

compose_round() {
  GREETING=hello measure compose cold "${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" up -d
  [ "$(running "com.docker.compose.project=$CP")" -eq 10 ] || die "Compose did not bring up 10 containers"
  GREETING=hello measure compose noop "${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" up -d
  local port
  port=$(port_of "$("${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" ps -q proxy)")
  GREETING=hi with_clients compose "$port" measure compose change "${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" up -d
  GREETING=hi measure compose destroy "${COMPOSE[@]}" -p "$CP" -f "$WORK/compose.yaml" down -t 1
}

scale_round() {
  GREETING=hello measure scale cold "$SCALE" apply --yes --no-color -p "$SP" "$WORK/scale.yaml"
  [ "$(running "io.scale.project=$SP")" -eq 10 ] || die "scale did not bring up 10 containers"
  GREETING=hello measure scale noop "$SCALE" apply --yes --no-color -p "$SP" "$WORK/scale.yaml"
  local port
  port=$(port_of "$SP-proxy-1")
  GREETING=hi with_clients scale "$port" measure scale change "$SCALE" apply --yes --no-color -p "$SP" "$WORK/scale.yaml"
  GREETING=hi measure scale destroy "$SCALE" destroy --yes --no-color -p "$SP"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS..." >&2
  # Alternate who goes first, so neither always runs on a warmer engine.
  if [ $((round % 2)) -eq 1 ]; then compose_round; scale_round; else scale_round; compose_round; fi
done


# median FILE COLUMN (1: ms, 2: KiB)
median() { awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
mib() { awk -v kib="$1" 'BEGIN { printf "%.1f", kib / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

compose_version=$("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -1)
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB, Docker $(docker version --format '{{.Server.Version}}'), ${COMPOSE[*]} $compose_version; $(date -u); median of $ROUNDS rounds."
echo
# failed TOOL: "failed of requests" over every round's client loop (change row only).
failed() { awk '{ ok += $1; bad += $2 } END { printf "%d of %d", bad, ok + bad }' "$WORK/$1.clients"; }
echo "| step | Compose wall | scale wall | scale / Compose | Compose failed requests | scale failed requests | Compose peak RSS | scale peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for step in cold noop change destroy; do
  cm=$(median "$WORK/compose.$step" 1); sm=$(median "$WORK/scale.$step" 1)
  cr=$(median "$WORK/compose.$step" 2); sr=$(median "$WORK/scale.$step" 2)
  case $step in
    cold) name="cold apply (\`up -d\` / \`apply --yes\`)" ;;
    noop) name="no-op apply" ;;
    change) name="one variable changed on the 6 web replicas" ;;
    destroy) name="destroy (\`down\` / \`destroy\`)" ;;
  esac
  cf="—"; sf="—"
  if [ "$step" = change ]; then cf=$(failed compose); sf=$(failed scale); fi
  echo "| $name | $(secs "$cm") s | $(secs "$sm") s | $(ratio "$sm" "$cm") | $cf | $sf | $(mib "$cr") MiB | $(mib "$sr") MiB |"
done
echo
noop_ratio=$(ratio "$(median "$WORK/scale.noop" 1)" "$(median "$WORK/compose.noop" 1)")
echo "No-op apply, scale / Compose: $noop_ratio"
echo "200 containers (scale only)..." >&2
measure many apply "$SCALE" apply --yes --no-color --parallel 8 --timeout 300s -p "$MP" "$WORK/many.yaml"
measure many noop "$SCALE" apply --yes --no-color -p "$MP" "$WORK/many.yaml"
measure many destroy "$SCALE" destroy --yes --no-color -p "$MP"
echo
echo "| scale, 200 containers (4 x 50) | wall | peak RSS |"
echo "| --- | ---: | ---: |"
for step in apply noop destroy; do
  echo "| $step | $(secs "$(median "$WORK/many.$step" 1)") s | $(mib "$(median "$WORK/many.$step" 2)") MiB |"
done
