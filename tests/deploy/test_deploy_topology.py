"""The shipped deploy files' topology with real processes, no container engine.

Two ``falproxy serve`` replicas, installed exactly as the Dockerfile installs them (a fresh
virtual environment holding the wheel and nothing else, tests/support/image_venv.py), a
real ``redis-server``, and Debian's nginx running the very ``deploy/nginx.conf``. The
replicas get the environment of a deploy file: ``deploy/docker-compose.yml`` with
``deploy/falproxy.env.example``, or the Kubernetes ConfigMap, the example Secret and the
Deployment.

What the test rewrites, and only that: addresses (loopback ports instead of
``falproxy-a:8080``, ``falproxy-b:8080``, ``listen 8080`` and the Redis host; the load
balancer's address in ``FALPROXY_TRUSTED_PROXIES`` becomes 127.0.0.1, where nginx connects
from here, after a test checks the shipped value names the load balancer), the ``/tmp/``
prefix of nginx's writable paths, the mounted config file's path, the key (the test key
the fake accepts), and the fal hosts, mapped to the fake fal. The allowed endpoints also
admit ``fake/**`` through the environment, which is how an operator overrides the file.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from tests.deploy.manifests import by_kind, container_env
from tests.support.image_venv import ImageVenv
from tests.support.ports import free_port
from tests.support.procs import (
    REPO,
    START_TIMEOUT,
    Served,
    falproxy_serve,
    need,
    proxy_env,
    stop,
    wait_until_up,
)
from tests.support.redis_support import running_redis
from tests.support.settings_table import falproxy_variables

DEPLOY = REPO / "deploy"
ROUTE = "/api/fal/proxy"
ECHO = {"x-fal-target-url": "https://fal.run/fake/echo", "content-type": "application/json"}
DEPLOYMENTS = ("compose", "kubernetes")
# Where nginx connects to the replicas from in this test: the load balancer's address.
LOAD_BALANCER_HERE = "127.0.0.1"
# Two browsers: distinct loopback source addresses (Linux routes all of 127/8 locally).
BROWSERS = ("127.0.0.2", "127.0.0.3")
REDIS_IN_FILES = "redis://redis:6379"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def env_file(path: Path) -> dict[str, str]:
    """A compose ``env_file``: NAME=value lines, comments and blanks skipped."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def compose_files_env() -> dict[str, str]:
    """falproxy-a's environment as compose builds it: env_file, then environment."""
    service = compose()["services"]["falproxy-a"]
    env = env_file(DEPLOY / "falproxy.env.example")
    env.update({name: str(value) for name, value in service["environment"].items()})
    return env


def files_env(deployment: str) -> dict[str, str]:
    return compose_files_env() if deployment == "compose" else container_env()


def mounted_config(deployment: str, scratch: Path) -> Path:
    """The TOML file the deployment mounts at FALPROXY_CONFIG, as a local file."""
    if deployment == "compose":
        volumes = compose()["services"]["falproxy-a"]["volumes"]
        sources = {volume.split(":")[1]: volume.split(":")[0] for volume in volumes}
        return DEPLOY / sources[compose_files_env()["FALPROXY_CONFIG"]]
    path = scratch / "falproxy.toml"
    path.write_text(by_kind("ConfigMap")["data"]["falproxy.toml"])
    return path


def local_env(deployment: str, redis_port: int, scratch: Path) -> dict[str, str]:
    """A deployment's environment, with only addresses, paths and the key made local."""
    env = files_env(deployment)
    env["FALPROXY_CONFIG"] = str(mounted_config(deployment, scratch))
    assert env["FALPROXY_REDIS_URL"].startswith(REDIS_IN_FILES)
    env["FALPROXY_REDIS_URL"] = env["FALPROXY_REDIS_URL"].replace(
        REDIS_IN_FILES, f"redis://127.0.0.1:{redis_port}"
    )
    if "FALPROXY_TRUSTED_PROXIES" in env:  # its shape is checked by the tests below
        env["FALPROXY_TRUSTED_PROXIES"] = LOAD_BALANCER_HERE
    env.pop("FAL_KEY")  # a placeholder in the files; the test key comes from proxy_env
    return env


def nginx_conf(port: int, replicas: tuple[int, int], scratch: Path) -> str:
    text = (DEPLOY / "nginx.conf").read_text()
    rewrites = {
        "server falproxy-a:8080": f"server 127.0.0.1:{replicas[0]}",
        "server falproxy-b:8080": f"server 127.0.0.1:{replicas[1]}",
        "listen 8080;": f"listen 127.0.0.1:{port};",
        "/tmp/": f"{scratch}/",
    }
    for old, new in rewrites.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Topology:
    url: str
    replicas: list[Served]
    scratch: Path

    def nginx_log(self) -> str:
        return (self.scratch / "nginx.stderr").read_text()


@contextmanager
def nginx(conf: str, scratch: Path, port: int) -> Iterator[None]:
    path = scratch / "nginx.conf"
    path.write_text(conf)
    command = [need("nginx"), "-e", "stderr", "-p", str(scratch), "-c", str(path)]
    command += ["-g", "daemon off;"]
    tested = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert tested.returncode == 0, tested.stderr
    with open(scratch / "nginx.stderr", "w") as sink:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        yield
    finally:
        stop(process, timeout=10)


@contextmanager
def topology(
    image: ImageVenv, fake_url: str, deployment: str = "compose", **overrides: str
) -> Iterator[Topology]:
    with ExitStack() as stack:
        redis_port = stack.enter_context(running_redis()).port
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        os.chmod(scratch, 0o755)  # nginx workers run as nobody
        env = image.env(proxy_env(fake_url, **local_env(deployment, redis_port, scratch)))
        env["FALPROXY_ALLOWED_ENDPOINTS"] = "fal-ai/flux/**,fake/**"
        env.update(overrides)
        ports = (free_port(), free_port())
        replicas = [
            stack.enter_context(falproxy_serve(env, port, executable=image.falproxy))
            for port in ports
        ]
        port = free_port()
        stack.enter_context(nginx(nginx_conf(port, ports, scratch), scratch, port))
        yield Topology(f"http://127.0.0.1:{port}", replicas, scratch)


@pytest.fixture(scope="module")
def deployed(image: ImageVenv, fake_url: str) -> Iterator[Topology]:
    with topology(image, fake_url) as running:
        yield running


def served_calls(replica: Served) -> int:
    return len(re.findall(r"http POST app=fake/echo status=200", replica.stderr()))


def browser(address: str, url: str) -> httpx.Client:
    """A client whose calls reach nginx from ``address``, as a distinct browser's would."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=30)


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_deploy_file_variables_are_ones_falproxy_reads(deployment: str) -> None:
    """A misspelt or dead variable (FORWARDED_ALLOW_IPS) would silently do nothing."""
    unknown = set(files_env(deployment)) - falproxy_variables()
    assert not unknown, f"{deployment} sets variables falproxy does not read: {unknown}"


def test_variable_check_really_catches_a_dead_variable() -> None:
    assert "FORWARDED_ALLOW_IPS" not in falproxy_variables()
    assert "FALPROXY_RATELIMIT" not in falproxy_variables()
    assert {"FALPROXY_RATE_LIMIT", "FALPROXY_TRUSTED_PROXIES", "FAL_KEY"} <= falproxy_variables()


def test_compose_trusts_exactly_its_nginx() -> None:
    services = compose()["services"]
    networks = compose()["networks"]
    ((network, settings),) = services["nginx"]["networks"].items()
    nginx_address = ipaddress.ip_address(settings["ipv4_address"])
    subnet = ipaddress.ip_network(networks[network]["ipam"]["config"][0]["subnet"])
    assert nginx_address in subnet
    for name in ("falproxy-a", "falproxy-b"):
        assert network in services[name]["networks"]
        trusted = str(services[name]["environment"]["FALPROXY_TRUSTED_PROXIES"])
        assert trusted == str(nginx_address), "trust nginx, the only load balancer, alone"


def test_kubernetes_trusts_private_pod_addresses_only() -> None:
    trusted = container_env()["FALPROXY_TRUSTED_PROXIES"].split(",")
    networks = [ipaddress.ip_network(entry.strip()) for entry in trusted]
    assert networks and all(network.is_private for network in networks)
    assert not any(network.prefixlen == 0 for network in networks)


def test_replicas_run_the_installed_wheel_not_the_tree(image: ImageVenv) -> None:
    env = image.env(dict(os.environ))
    found = subprocess.run(
        [str(image.python), "-c", "import falproxy; print(falproxy.__file__)"],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert found.stdout.strip().startswith(str(image.site_packages())), found


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_shipped_settings_serve_share_a_limit_and_keep_browsers_apart(
    image: ImageVenv, fake_url: str, deployment: str
) -> None:
    """Both replicas start with the file's settings; one limit across them, one per browser."""
    limit = 4
    with topology(image, fake_url, deployment, FALPROXY_RATE_LIMIT=f"{limit}/minute") as running:
        first, second = (browser(address, running.url) for address in BROWSERS)
        with first, second:
            proxied = first.post(ROUTE, headers=ECHO, json={"hello": deployment})
            assert proxied.status_code == 200, proxied.text
            assert json.loads(proxied.json()["body"]) == {"hello": deployment}
            statuses = [first.post(ROUTE, headers=ECHO, json={}).status_code for _ in range(5)]
            other = second.post(ROUTE, headers=ECHO, json={})
        time.sleep(0.5)  # the access-log line is written as the call ends
        served = [served_calls(replica) for replica in running.replicas]
        logs = [replica.stderr() for replica in running.replicas]
    # The first browser's budget, shared by both replicas through Redis: 4 calls, then 429.
    assert statuses == [200] * (limit - 1) + [429] * 2, (statuses, logs)
    assert all(count >= 1 for count in served), ("both replicas took part", served)
    # The second browser has a budget of its own, although both come through one nginx.
    assert other.status_code == 200, (other.status_code, other.text)
    assert all("Traceback" not in log and "FORWARDED_ALLOW_IPS" not in log for log in logs)


def test_calls_are_spread_over_both_replicas(deployed: Topology) -> None:
    with httpx.Client(base_url=deployed.url, timeout=30) as client:
        for index in range(8):
            response = client.post(ROUTE, headers=ECHO, json={"i": index})
            assert response.status_code == 200
            assert json.loads(response.json()["body"]) == {"i": index}
    time.sleep(0.5)  # the access-log line is written as the call ends
    logs = [replica.stderr() for replica in deployed.replicas]
    assert all(served_calls(replica) >= 2 for replica in deployed.replicas), logs


def test_sse_arrives_unbuffered_through_nginx(deployed: Topology) -> None:
    url = "https://fal.run/fake/slow-stream?events=4&interval=1.0"
    headers = {"x-fal-target-url": url, "content-type": "application/json"}
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{deployed.url}{ROUTE}", headers=headers, json={}, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    assert arrivals[-1] >= 2.9
    assert arrivals[0] < 1.5, f"first event after {arrivals[0]:.2f}s: nginx buffered it"


def test_metrics_are_refused_through_nginx_and_served_on_the_pod_port(
    deployed: Topology,
) -> None:
    """Issue 12: the public side never reaches /metrics; Prometheus scrapes replicas.

    Runs before the test that stops a replica (the topology is shared by the module).
    """
    # nginx decodes, merges slashes and resolves dot segments before matching.
    spellings = ("/metrics", "/metrics/", "/metrics?x=1", "//metrics", "/%6detrics")
    for path in spellings:
        response = httpx.get(deployed.url + path, timeout=10)
        assert response.status_code == 404, path
        assert b"falproxy_requests" not in response.content, path
    for replica in deployed.replicas:
        scraped = httpx.get(f"http://127.0.0.1:{_port_of(replica)}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert b"falproxy_requests" in scraped.content


def test_websocket_relays_through_nginx(image: ImageVenv, fake_url: str) -> None:
    from websockets.sync.client import connect
    from websockets.sync.server import ServerConnection, serve

    def echo(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    # This stand-in for fal logs the handshake headers it receives, the key among them, at
    # DEBUG: keep that (correctly delivered) key out of the suite-wide log scan.
    upstream_log = logging.getLogger("tests.fal-stand-in")
    upstream_log.propagate = False
    with serve(echo, "127.0.0.1", 0, logger=upstream_log) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        echo_port = server.socket.getsockname()[1]
        upstreams = f"fal.run=http://127.0.0.1:{echo_port}"
        with topology(image, fake_url, FALPROXY_UPSTREAMS=upstreams) as running:
            target = quote("wss://fal.run/fal-ai/flux/dev/realtime?fal_jwt_token=t", safe="")
            ws_url = running.url.replace("http://", "ws://")
            with connect(f"{ws_url}{ROUTE}?fal_target_url={target}") as socket:
                socket.send(b"\x81\xa1a\x01")
                assert socket.recv(timeout=10) == b"\x81\xa1a\x01"
        server.shutdown()


def _traffic(url: str, calls: int, results: list[int], stop_at: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(calls):
            if stop_at.is_set():
                return
            results.append(client.post(ROUTE, headers=ECHO, json={"i": index}).status_code)
            time.sleep(0.05)


def _stream(url: str, events: list[int]) -> None:
    target = "https://fal.run/fake/slow-stream?events=5&interval=0.5"
    headers = {"x-fal-target-url": target, "content-type": "application/json"}
    with httpx.stream("POST", f"{url}{ROUTE}", headers=headers, json={}, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(1)


def _port_of(replica: Served) -> int:
    args = list(map(str, replica.process.args))  # type: ignore[arg-type]
    return int(args[args.index("--port") + 1])


def test_stopping_a_replica_mid_traffic_loses_no_completed_request(deployed: Topology) -> None:
    """Runs last in this module: it stops replica A for good."""
    results: list[int] = []
    streams: list[list[int]] = [[], []]
    done = threading.Event()
    workers = [
        threading.Thread(target=_traffic, args=(deployed.url, 12, results, done)) for _ in range(2)
    ]
    # One stream surely on replica A (directly), one through nginx.
    replica_a = f"http://127.0.0.1:{_port_of(deployed.replicas[0])}"
    workers += [
        threading.Thread(target=_stream, args=(url, events))
        for url, events in zip((replica_a, deployed.url), streams, strict=True)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not (len(results) >= 6 and all(streams)) and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = deployed.replicas[0].process
    exit_status = stop(victim)
    for worker in workers:
        worker.join(timeout=60)
    done.set()
    assert exit_status == 0
    assert len(results) == 24 and set(results) == {200}, (results, deployed.nginx_log())
    assert [len(events) for events in streams] == [5, 5], "streams on the stopped replica finish"
    after = httpx.post(f"{deployed.url}{ROUTE}", headers=ECHO, json={}, timeout=30)
    assert after.status_code == 200
