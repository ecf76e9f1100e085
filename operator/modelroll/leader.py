"""One active operator among replicas: the process runs kopf only while it holds the Lease.

A standby waits (healthy, its /healthz answering "standby") until the Lease is free or its
hold has lapsed, takes it, and only then starts kopf. While leading, a thread renews the
Lease; the moment it cannot (another holder, or no renewal for `Timing.deadline`) it ends
the process at once (`os._exit`), and Kubernetes restarts it as a standby. Ending abruptly
is safe because every reconcile is level-based and idempotent (server-side apply): a
leader killed at any moment, SIGKILL included, leaves nothing a successor cannot finish.
"""

from __future__ import annotations

import datetime
import http.server
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_client import Gauge

from modelroll import lease
from modelroll.kube import ApiError, Kube
from modelroll.kube_transport import connect
from modelroll.lease import Observed, Timing

log = logging.getLogger(__name__)
LEADING = Gauge(
    "modelroll_operator_leader",
    "1 while this replica holds the leader Lease and runs the operator, 0 while it stands by.",
)


def identity() -> str:
    """Unique per process, as client-go's `hostname_uuid`: a restarted container in the
    same pod waits for its predecessor's hold to end instead of inheriting it."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _path(namespace: str, name: str = "") -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaseLost(Exception):
    """This process no longer holds the Lease (or can no longer know that it does)."""


class Elector:
    """Acquires, renews and releases one Lease for one identity."""

    def __init__(
        self, kube: Kube, namespace: str, name: str, me: str, timing: Timing | None = None
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.me = me
        self.timing = timing or Timing()
        self.observed: Observed | None = None
        self.renewed_at = 0.0
        self.stop = threading.Event()

    def try_acquire(self) -> bool:
        """One look at the Lease; True once this identity holds it (written, not assumed)."""
        # The hold counts from before the write, as client-go counts it: a slow reply then
        # shortens the leader's own deadline, never the standby's wait.
        sent = time.monotonic()
        try:
            current = self.kube.get(_path(self.namespace, self.name))
            if current is None:
                body = lease.new_lease(self.namespace, self.name, self.me, self.timing, _now())
                self.kube.request("POST", _path(self.namespace), body)
            else:
                now = time.monotonic()
                self.observed = lease.observe(self.observed, current, now)
                if not lease.may_acquire(self.observed, self.me, current, now):
                    return False
                body = lease.held(current, self.me, self.timing, _now())
                self.kube.request("PUT", _path(self.namespace, self.name), body)
        except ApiError as error:
            if error.status != 409:  # 409: another candidate wrote first; look again
                log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        except Exception as error:  # the apiserver unreachable (urllib3's errors): look again
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        self.renewed_at = sent
        return True

    def acquire(self, wait: Callable[[float], object] = time.sleep) -> None:
        """Blocks until this identity leads."""
        log.info("standing by for lease %s/%s as %s", self.namespace, self.name, self.me)
        while not self.try_acquire():
            wait(self.timing.retry)
        log.info("leading: acquired lease %s/%s as %s", self.namespace, self.name, self.me)

    def renew_forever(self, lost: Callable[[str], None]) -> None:
        """Renews every `renew` seconds (retrying every `retry`) until `stop`; calls `lost`
        when another holds it. The deadline is `watch_deadline`'s."""
        while not self.stop.wait(self.timing.renew):
            try:
                while not self.stop.is_set() and not self._renew():
                    self.stop.wait(self.timing.retry)
            except LeaseLost as reason:
                lost(str(reason))
                return

    def watch_deadline(self, lost: Callable[[str], None]) -> None:
        """Calls `lost` once no renewal succeeded for `deadline`, even while a request hangs
        (the client has no timeout of its own): a blocked renewal must not outlive the hold."""
        while not self.stop.wait(self.timing.retry):
            if time.monotonic() - self.renewed_at >= self.timing.deadline:
                lost(f"no renewal for {self.timing.deadline:g}s")
                return

    def _renew(self) -> bool:
        """True when renewed, False when it may work next time; LeaseLost when it cannot."""
        sent = time.monotonic()
        try:
            current = self.kube.get(_path(self.namespace, self.name))
            holder = ((current or {}).get("spec") or {}).get("holderIdentity")
            if current is None or holder != self.me:
                # Someone else holds it (or it was deleted): stop now, not at the deadline.
                raise LeaseLost(f"the lease is held by {holder!r}")
            body = lease.held(current, self.me, self.timing, _now())
            self.kube.request("PUT", _path(self.namespace, self.name), body)
        except ApiError as error:
            if error.status == 409:  # written by someone else since we read it
                raise LeaseLost("the lease changed under us") from error
            log.warning("renewing lease %s/%s: %s", self.namespace, self.name, error)
            return False
        except LeaseLost:
            raise
        except Exception as error:  # the apiserver unreachable (urllib3's errors)
            log.warning("renewing lease %s/%s: %s", self.namespace, self.name, error)
            return False
        self.renewed_at = sent
        return True

    def release(self) -> None:
        """Hands the Lease back on a clean stop, so a standby need not wait it out."""
        self.stop.set()
        try:
            current = self.kube.get(_path(self.namespace, self.name))
            body = lease.released(current, self.me) if current else None
            if body is not None:
                self.kube.request("PUT", _path(self.namespace, self.name), body)
                log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as error:  # best effort: the hold lapses by itself anyway
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, error)


def _exit_now(reason: str) -> None:
    log.error("lost the leader lease (%s): exiting so that only one operator acts", reason)
    logging.shutdown()
    os._exit(1)


class StandbyProbe:
    """Answers the liveness URL with 200 "standby" until kopf takes the port over."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        path = parts.path or "/"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path.split("?")[0] == path
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"standby\n" if found else b"")

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would flood the log

        self.server = http.server.ThreadingHTTPServer(
            (parts.hostname or "0.0.0.0", parts.port or 80), Handler
        )
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def lead(namespace: str, name: str, liveness_url: str | None) -> Elector:
    """Stands by until this process holds the Lease, then keeps renewing it in a thread;
    returns once leading (kopf starts next)."""
    elector = Elector(Kube(connect()), namespace, name, identity())
    LEADING.set(0)
    probe = StandbyProbe(liveness_url) if liveness_url else None
    try:
        elector.acquire()
    finally:
        if probe is not None:
            probe.close()
    LEADING.set(1)
    for target, name in (
        (elector.renew_forever, "lease-renewal"),
        (elector.watch_deadline, "lease-deadline"),
    ):
        threading.Thread(target=target, args=(_exit_now,), name=name, daemon=True).start()
    return elector
