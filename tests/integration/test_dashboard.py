"""`modelroll dashboard` as a user runs it: the real CLI process against the test cluster,
the real operator, and headless Chromium (Debian's) driven through Selenium.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.integration.conftest import Cluster, OperatorProcess
from tests.integration.helpers import condition, eventually, get_json
from tests.runtime.models import train_sklearn
from tests.runtime.runtime_process import RuntimeProcess
from tests.support.prerequisites import VENV_FIX, require
from tests.support.prometheus import drive_traffic, start_runtime

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
Json = dict[str, Any]
SETOSA = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}
# Two replicas: one canary pod next to two stable ones is 33%, two next to two is 50%.
ROLLOUT = {
    "strategy": "Canary",
    "canary": {"steps": [{"weight": 25, "pauseSeconds": 4}, {"weight": 50, "pauseSeconds": 3600}]},
}


def spec(version: str) -> Json:
    return {
        "model": {
            "format": "sklearn",
            "uri": "https://models.example.com/iris/",
            "version": version,
        },
        "replicas": 2,
        "rollout": ROLLOUT,
    }


def apply_md(cluster: Cluster, namespace: str, name: str, version: str) -> None:
    body = {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec(version),
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def md_status(cluster: Cluster, namespace: str, name: str) -> Json:
    return dict(get_json(cluster, "-n", namespace, "md", name).get("status") or {})


def ready_revision(cluster: Cluster, namespace: str, name: str) -> str:
    md: Json = get_json(cluster, "-n", namespace, "md", name)
    assert condition(md, "Ready").get("status") == "True", md.get("status")
    return str(md["status"]["stableRevision"])


def stable_is(cluster: Cluster, namespace: str, name: str, revision: str) -> Json:
    md: Json = get_json(cluster, "-n", namespace, "md", name)
    assert (md.get("status") or {}).get("stableRevision") == revision, md.get("status")
    assert condition(md, "Ready").get("status") == "True", md.get("status")
    return md


class DashboardProcess:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process, self.url = process, url
        self.port = int(url.rsplit(":", 1)[1].strip("/"))


@pytest.fixture
def dashboard(cluster: Cluster, operator: OperatorProcess) -> Iterator[DashboardProcess]:
    python = str(REPO / ".venv" / "bin" / "python")
    require(python, needed_by="the dashboard run from source", fix=VENV_FIX)
    process = subprocess.Popen(
        [python, "-m", "modelroll.cli.main", "dashboard", "--port", "0"],
        env={**cluster.env, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the command prints its URL first
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert found, f"no URL in the dashboard's first line: {line!r}"
    yield DashboardProcess(process, found.group(0))
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    require(CHROMIUM, CHROMEDRIVER, needed_by="the dashboard's browser test")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def text_of(driver: webdriver.Chrome, css: str, attribute: str | None = None) -> str:
    """The element's text (or attribute); absent or replaced mid-read, an AssertionError."""
    try:
        element = driver.find_element(By.CSS_SELECTOR, css)
        return str(element.get_attribute(attribute) if attribute else element.text)
    except WebDriverException as error:  # polled with eventually(), which retries these
        raise AssertionError(f"{css}: {error.msg}") from None


def test_dashboard_follows_a_canary_live_and_promote_promotes(
    cluster: Cluster,
    namespace: str,
    dashboard: DashboardProcess,
    browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    apply_md(cluster, namespace, "iris", "1")
    r1 = eventually(lambda: ready_revision(cluster, namespace, "iris"), timeout=90)

    browser.get(f"{dashboard.url}?md={namespace}/iris")
    row = f'tr.md-row[data-namespace="{namespace}"][data-name="iris"]'
    eventually(lambda: "True" in text_of(browser, row), timeout=20)
    assert r1 in text_of(browser, row) and "Canary" in text_of(browser, row)
    assert f"{r1} (stable) 100%" in text_of(browser, "#split")
    # A reload would drop this: it proves every later change came from the live updates.
    browser.execute_script("window.notReloaded = true")

    apply_md(cluster, namespace, "iris", "2")
    r2 = str(
        eventually(lambda: md_status(cluster, namespace, "iris").get("canaryRevision"), timeout=60)
    )

    def at_step(number: int, weight: str, share: str) -> bool:
        current = text_of(browser, "li.step-current")
        split = text_of(browser, "#split")
        assert current.startswith(weight), (current, split)  # the step's spec weight
        assert text_of(browser, "li.step-current", "data-step") == str(number), current
        assert f"{r2} (canary) {share}" in split, split
        return True

    eventually(lambda: at_step(1, "25%", "33%"), timeout=60, interval=0.3)
    eventually(lambda: at_step(2, "50%", "50%"), timeout=60, interval=0.3)
    assert browser.execute_script("return window.notReloaded") is True
    assert "s left" in text_of(browser, "li.step-current")  # the remaining pause of step 2
    shot = tmp_path / "dashboard.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("MODELROLL_DASHBOARD_SCREENSHOT"):  # how docs/images/dashboard.png is made
        shutil.copy(shot, os.environ["MODELROLL_DASHBOARD_SCREENSHOT"])

    browser.find_element(By.ID, "action-promote").click()
    eventually(lambda: "modelroll.io/promote=true" in text_of(browser, "#flash"), timeout=10)
    eventually(lambda: stable_is(cluster, namespace, "iris", r2), timeout=60)
    eventually(lambda: f"{r2} (stable) 100%" in text_of(browser, "#split"), timeout=20)
    assert browser.execute_script("return window.notReloaded") is True


def post(port: int, headers: dict[str, str], body: Json) -> tuple[int, Json]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/api/action", body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def token_of(port: int, host: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/", headers={"Host": host})
    page = connection.getresponse().read().decode()
    found = re.search(r'name="modelroll-token" content="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def other_address() -> str:
    """This machine's address on its default route: not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP: no packet is sent, only a route is chosen
        address = str(probe.getsockname()[0])
    assert not address.startswith("127."), address
    return address


def test_dashboard_refuses_cross_site_posts_and_answers_only_on_loopback(
    cluster: Cluster, namespace: str, dashboard: DashboardProcess
) -> None:
    apply_md(cluster, namespace, "guarded", "1")
    eventually(lambda: get_json(cluster, "-n", namespace, "md", "guarded").get("status"))
    port, host = dashboard.port, f"127.0.0.1:{dashboard.port}"
    token = token_of(port, host)
    body = {"action": "abort", "namespace": namespace, "name": "guarded"}
    good = {"Host": host, "Content-Type": "application/json", "X-Modelroll-Token": token}

    status, answer = post(port, {**good, "Origin": "http://evil.example"}, body)
    assert status == 403 and "cross-origin" in answer["error"], answer
    status, answer = post(port, {**good, "X-Modelroll-Token": ""}, body)
    assert status == 403 and "X-Modelroll-Token" in answer["error"], answer
    status, answer = post(port, {**good, "X-Modelroll-Token": token[:-1] + "x"}, body)
    assert status == 403, answer
    # DNS rebinding: a name that resolves to 127.0.0.1 still arrives with its own Host.
    status, answer = post(port, {**good, "Host": f"rebind.example:{port}"}, body)
    assert status == 403 and "127.0.0.1" in answer["error"], answer
    annotations = get_json(cluster, "-n", namespace, "md", "guarded")["metadata"].get(
        "annotations", {}
    )
    assert "modelroll.io/abort" not in annotations  # none of the refused POSTs got through

    # The same request from the page's own origin, with its token, is taken.
    status, answer = post(port, {**good, "Origin": f"http://localhost:{port}"}, body)
    assert status == 200 and "modelroll.io/abort=true" in answer["message"], answer

    with pytest.raises(OSError):  # refused: nothing listens there
        socket.create_connection((other_address(), port), timeout=5).close()
    assert token_of(port, f"localhost:{port}") == token


def free_on_all_addresses(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


@pytest.fixture
def runtime_as_pod(tmp_path: Path) -> Iterator[RuntimeProcess]:
    """A real runtime on this machine's own address, at the pod's containerPort (8080)."""
    assert free_on_all_addresses(8080), "port 8080 is taken: the pod proxy test needs it"
    model = train_sklearn(tmp_path / "model")
    runtime = start_runtime(
        model.directory,
        tmp_path / "runtime.log",
        tmp_path / "cache",
        model_name="live",
        MODELROLL_HTTP_HOST="0.0.0.0",
        MODELROLL_HTTP_PORT="8080",
    )
    runtime.port = 8080  # the health checks and the traffic go to 127.0.0.1:8080
    runtime.wait_ready()
    yield runtime
    runtime.stop()


def test_dashboard_reads_request_rate_and_errors_through_the_pod_proxy(
    cluster: Cluster,
    namespace: str,
    dashboard: DashboardProcess,
    runtime_as_pod: RuntimeProcess,
) -> None:
    body = {
        "apiVersion": "modelroll.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "live", "namespace": namespace},
        "spec": {**spec("1"), "replicas": 1},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
    revision = eventually(lambda: ready_revision(cluster, namespace, "live"), timeout=90)
    # kwok pods run nothing: point the revision's one pod at the real runtime, so the API
    # server's pod proxy reaches it (it refuses loopback, hence the machine's own address).
    pod = get_json(cluster, "-n", namespace, "pods")["items"][0]["metadata"]["name"]
    address = other_address()
    patch = {"status": {"podIP": address, "podIPs": [{"ip": address}]}}
    cluster.kubectl(
        "-n", namespace, "patch", "pod", pod, "--subresource=status", "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip

    def state() -> str:
        connection = http.client.HTTPConnection("127.0.0.1", dashboard.port, timeout=20)
        connection.request(
            "GET",
            f"/api/state?md={namespace}/live",
            headers={"Host": f"127.0.0.1:{dashboard.port}"},
        )
        return str(json.loads(connection.getresponse().read())["detail"])

    cells = re.compile(rf"<td>{revision}</td>.*?<td>(\d+\.\d\d)</td>\s*<td>([^<]*)</td>", re.S)
    state()  # the first scrape: a rate needs two
    sent = drive_traffic(
        8080, "/v2/models/live/infer", json.dumps(SETOSA).encode(), requests=60, max_seconds=20
    )
    assert sent[200] == 60, sent
    found = cells.search(state())
    assert found, state()
    assert float(found.group(1)) > 0 and found.group(2) == "0.0%", found.groups()
    # A window without requests has a rate of 0 and no error share.
    found = cells.search(state())
    assert found and found.group(2) == "-", found and found.groups()
