"""The campaign report through the plugin URL of a real Airflow API server, rendered by headless Chromium.

Chromium is Debian's package (installed by ``install_chromium.sh`` when missing) driven over the
DevTools protocol; the login is the simple auth manager's JWT, set as the UI's ``_token`` cookie.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from faxflow.airflow.links import report_url

HERE = Path(__file__).resolve().parent
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
CAMPAIGN = """
name: web
description: Does the report render in a browser?
number_job: 1
number_event_per_job: 40
output_root: {out}
variants:
  - {{name: d20, physics: {{diffusion_constant_cm2_per_s: 20}}}}
  - {{name: d40, physics: {{diffusion_constant_cm2_per_s: 40}}}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    directory = tmp_path_factory.mktemp("web")
    config = directory / "web.yaml"
    config.write_text(CAMPAIGN.format(out=directory / "out"))
    done = subprocess.run([sys.executable, "-m", "faxflow.cli", "run", str(config), "-j", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    reports = list((directory / "out" / "web").glob("report-*.html"))
    assert len(reports) == 1
    return reports[0]


@pytest.fixture(scope="module")
def api_server(airflow_db, report):
    from faxflow.airflow.home import ADMIN_USER, admin_password

    password = admin_password(airflow_db)
    port = free_port()
    env = {**os.environ, "FAXFLOW_REPORT_ROOTS": str(report.parent.parent)}
    log = open(airflow_db / f"api-server-{port}.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port),
                               "-w", "1"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def healthy():
        assert server.poll() is None, (airflow_db / f"api-server-{port}.log").read_text()[-3000:]
        try:
            return httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 180, "the Airflow API server")
        token = httpx.post(f"{base}/auth/token", json={"username": ADMIN_USER, "password": password},
                           timeout=30).json()["access_token"]
        yield base, token
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    subprocess.run(["bash", str(HERE / "install_chromium.sh")], check=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    browser = subprocess.Popen(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                "--remote-debugging-port=0", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"
        port = wait_for(lambda: active.exists() and active.read_text().split("\n")[0], 60, "chromium's DevTools port")
        pages = wait_for(lambda: [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json()
                                  if t["type"] == "page"], 30, "a chromium page")
        from websockets.sync.client import connect

        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket_:
            yield DevTools(socket_)
    finally:
        os.killpg(browser.pid, 15)
        browser.wait(timeout=30)


class DevTools:
    """The few DevTools protocol calls the test needs, over one websocket."""

    def __init__(self, websocket):
        self.socket = websocket
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("document.readyState === 'complete' && location.href") == url, 60, url)


def test_report_renders_logged_in_with_every_image_decoded(api_server, chromium, report):
    base, token = api_server
    url = base + report_url(str(report))
    chromium.call("Network.enable")
    chromium.call("Network.setCookie", name="_token", value=token, url=base, path="/")
    chromium.open(url)
    page = chromium.evaluate("JSON.stringify({title: document.title, text: document.body.innerText.length, "
                             "fits: document.querySelectorAll('#fits td[data-quantity]').length, "
                             "images: [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])})")
    page = json.loads(page)
    assert page["title"] == "faxflow report web" and page["text"] > 500 and page["fits"] > 10
    assert len(page["images"]) >= 16
    undecoded = [alt for alt, complete, width in page["images"] if not complete or width <= 0]
    assert undecoded == []


def test_report_refused_without_login(api_server, report):
    base, _ = api_server
    response = httpx.get(base + report_url(str(report)), timeout=30)
    assert response.status_code in (401, 403)
    assert "faxflow report" not in response.text
    forged = httpx.get(base + report_url(str(report)), cookies={"_token": "not-a-jwt"}, timeout=30)
    assert forged.status_code in (401, 403)


def test_plugin_serves_only_reports_and_answers_nul_with_404(api_server, report):
    base, token = api_server
    auth = {"Authorization": f"Bearer {token}"}
    ok = httpx.get(base + report_url(str(report)), headers=auth, timeout=30)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in ok.headers["content-security-policy"]
    for path in (f"{report}\x00.html", str(report.parent / "web.yaml"), "/etc/passwd",
                 str(report.with_name("report-00000000.html"))):
        response = httpx.get(f"{base}/faxflow/report?path={quote(path)}", headers=auth, timeout=30)
        assert response.status_code == 404, (path, response.status_code)


def test_report_task_prints_the_fit_table_and_returns_the_report(report, capsys):
    import hashlib

    import pandas as pd

    from faxflow.airflow.tasks import campaign_report

    campaign_dir = report.parent
    index = next(campaign_dir.glob("manifests/plan-*/index.json"))
    plan_info = {"campaign": "web", "run_id": "manual", "run_key": "manual", "local_root": str(campaign_dir.parent),
                 "output_root": str(campaign_dir.parent), "manifest": str(index),
                 "manifest_digest": hashlib.sha256(index.read_bytes()).hexdigest(), "dry_run": False,
                 "force": False, "variants": {"d20": {}, "d40": {}}, "totals": {}}
    result = campaign_report(plan_info, {"d20": {"events_out": 40}, "d40": {"events_out": 40}}, {"backend": "local"})
    log = capsys.readouterr().out
    assert "diffusion constant D" in log and "electron lifetime" in log and f"campaign report: {report}" in log
    assert result["report"] == str(report)
    catalog = pd.read_parquet(result["catalog"])
    assert result["measured"]["cpu_hours"] == pytest.approx(catalog["cpu_seconds"].sum() / 3600)
    assert json.loads(Path(result["summary"]).read_text())["report"] == str(report)
