"""Observability of the demo web server (stage 10): Prometheus metrics and central logs.

app.py calls three hooks:
- `observe(method, path, code, seconds)` after every request: counts it by method and status
  code and puts its duration in a histogram (`/healthz` and `/metrics` themselves are left
  out, so health checks and scrapes do not drown the users' requests);
- `render()` answers `GET /metrics` in Prometheus's text format: the server's own name is a
  label (`server`), so a query can split the traffic per web server even though Prometheus
  finds the servers by the DNS name `web` (addresses only);
- `forward(line)` copies every log line to a syslog server when `LOG_SYSLOG` names one
  (`logs:514`): one UDP datagram per line, RFC 3164 with the host name and the tag `web`,
  so the central log file says which server wrote what. A lost datagram loses one line and
  never slows a request; stdout (`scale logs`) keeps everything as before.

Standard library only, like app.py.
"""

import os
import socket
import threading
import time

HOSTNAME = socket.gethostname()
LOG_SYSLOG = os.environ.get("LOG_SYSLOG", "").strip()  # host:port of a syslog server (UDP)

# Upper bounds of the latency histogram, in seconds (Prometheus's `le`).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNCOUNTED = ("/healthz", "/metrics")

_lock = threading.Lock()
_requests = {}  # (method, code) -> count
_bucket_counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
_duration_sum = 0.0
_started = time.time()


def observe(method, path, code, seconds):
    """Counts one answered request (not the health checks or the scrapes)."""
    global _duration_sum
    if path.split("?", 1)[0] in UNCOUNTED:
        return
    key = (method, str(code))
    index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
    with _lock:
        _requests[key] = _requests.get(key, 0) + 1
        _bucket_counts[index] += 1
        _duration_sum += seconds


def render():
    """The metrics in Prometheus's text exposition format (version 0.0.4)."""
    server = 'server="%s"' % HOSTNAME
    with _lock:
        requests = sorted(_requests.items())
        buckets = list(_bucket_counts)
        total_sum = _duration_sum
    out = [
        "# HELP scale_http_requests_total Requests answered by this web server (not /healthz or /metrics).",
        "# TYPE scale_http_requests_total counter",
    ]
    for (method, code), n in requests:
        out.append('scale_http_requests_total{%s,method="%s",code="%s"} %d' % (server, method, code, n))
    out += [
        "# HELP scale_http_request_duration_seconds Time from reading a request to sending its answer.",
        "# TYPE scale_http_request_duration_seconds histogram",
    ]
    cumulative = 0
    for bound, n in zip(BUCKETS + ("+Inf",), buckets):
        cumulative += n
        out.append('scale_http_request_duration_seconds_bucket{%s,le="%s"} %d' % (server, bound, cumulative))
    out.append("scale_http_request_duration_seconds_sum{%s} %.6f" % (server, total_sum))
    out.append("scale_http_request_duration_seconds_count{%s} %d" % (server, cumulative))
    out += [
        "# HELP scale_process_start_time_seconds When this web server started (Unix time).",
        "# TYPE scale_process_start_time_seconds gauge",
        "scale_process_start_time_seconds{%s} %.3f" % (server, _started),
    ]
    return "\n".join(out) + "\n"


class _Syslog:
    """UDP syslog sender that looks its server up again every few seconds, so a re-created
    log server (new address) is followed, and a missing one costs nothing but the line."""

    def __init__(self, target):
        host, _, port = target.rpartition(":")
        self.host, self.port = (host, int(port)) if host else (target, 514)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = None
        self.looked_up = 0.0
        self.lock = threading.Lock()

    def _address(self):
        now = time.monotonic()
        if self.addr is None or now - self.looked_up > 5:
            self.looked_up = now
            try:
                self.addr = (socket.gethostbyname(self.host), self.port)
            except OSError:
                self.addr = None
        return self.addr

    def send(self, line):
        # <134> = facility local0, severity info; RFC 3164 header with our host name and tag.
        stamp = time.strftime("%b %d %H:%M:%S")
        datagram = ("<134>%s %s web: %s" % (stamp, HOSTNAME, line))[:4000].encode("utf-8", "replace")
        with self.lock:
            addr = self._address()
            if addr is None:
                return
            try:
                self.sock.sendto(datagram, addr)
            except OSError:
                self.addr = None


_syslog = _Syslog(LOG_SYSLOG) if LOG_SYSLOG else None


def forward(line):
    """Copies one log line to the central log server, if there is one."""
    if _syslog is not None:
        _syslog.send(line)
