"""A loopback HTTP router that plays cluster DNS and kube-proxy for kwok clusters.

kwok pods never run, so a Service name leads nowhere. The operator is started with
MODELROLL_SERVICE_URL_TEMPLATE pointing here (http://127.0.0.1:<port>/{namespace}/{service}),
and the router forwards /<namespace>/<service>/<path> to the real runtime process that plays
that Service's pods, rewriting /models/<name>/ to the name that runtime serves. A Service
can instead be answered by a function (`answer`), which plays a hostile tenant's pods.
"""

from __future__ import annotations

import http.client
import http.server
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.runtime.runtime_process import free_port

MODEL_SEGMENT = re.compile(r"/models/[^/:]+")


@dataclass
class Router:
    routes: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    requests: list[str] = field(default_factory=list)
    answers: dict[tuple[str, str], Callable[[http.server.BaseHTTPRequestHandler], None]] = field(
        default_factory=dict
    )

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{namespace}}/{{service}}"

    def route(self, namespace: str, service: str, runtime_port: int, model: str) -> None:
        self.routes[(namespace, service)] = (runtime_port, model)

    def answer(
        self,
        namespace: str,
        service: str,
        handler: Callable[[http.server.BaseHTTPRequestHandler], None],
    ) -> None:
        """Requests to this Service are answered by `handler` (the request body is read)."""
        self.answers[(namespace, service)] = handler

    def start(self) -> Router:
        router = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                _, namespace, service, rest = ([*self.path.split("/", 3), "", "", ""])[:4]
                router.requests.append(f"{namespace}/{service}/{rest}")
                target = router.routes.get((namespace, service))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer_with = router.answers.get((namespace, service))
                if answer_with is not None:
                    answer_with(self)
                    return
                if target is None:
                    self.send_error(503, f"no endpoints for {namespace}/{service}")
                    return
                port, model = target
                headers = {"Content-Type": "application/json"}
                if "Authorization" in self.headers:  # the runtime's bearer auth, as a proxy would
                    headers["Authorization"] = self.headers["Authorization"]
                upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                upstream.request(
                    "POST",
                    MODEL_SEGMENT.sub(f"/models/{model}", "/" + rest),
                    body=body,
                    headers=headers,
                )
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
