"""Run inside a fresh network namespace by test_dockerfile.py: the image's command, for real.

A namespace of our own has only a loopback interface, so the exact ``--host 0.0.0.0 --port
8080`` of the Dockerfile binds nothing reachable from outside and collides with no one.
Standard library only: it runs under the fresh virtual environment's Python. Prints one
JSON object of what it saw.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
FAKE_PORT = 9000


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)
        fcntl.ioctl(sock, SIOCSIFFLAGS, request)


def wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def main() -> None:
    spec = json.loads(sys.argv[1])
    loopback_up()
    bin_dir = os.path.dirname(sys.executable)
    fake = subprocess.Popen(
        [
            os.path.join(bin_dir, "falproxy"),
            "fake",
            "--port",
            str(FAKE_PORT),
            "--expected-key",
            spec["key"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{FAKE_PORT}"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        **spec["env"],
        "FAL_KEY": spec["key"],
        "FALPROXY_UPSTREAMS": f"fal.run={base}/run,queue.fal.run={base}/queue",
    }
    server = subprocess.Popen(
        spec["command"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    report: dict[str, object] = {}
    try:
        wait_for(f"{base}/__fake__/stats", fake)
        wait_for(f"http://127.0.0.1:{spec['port']}/healthz", server)
        health = subprocess.run(spec["healthcheck"], env=env, timeout=30)
        report["healthcheck_status"] = health.returncode
        request = urllib.request.Request(
            f"http://127.0.0.1:{spec['port']}/api/fal/proxy",
            data=json.dumps({"prompt": "a lighthouse"}).encode(),
            headers={
                "x-fal-target-url": "https://fal.run/fal-ai/flux/dev",
                "content-type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            report["proxied_status"] = response.status
            report["proxied_body"] = json.loads(response.read())
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=40)
        report["exit_status"] = server.returncode
        report["stderr"] = stderr.decode(errors="replace")
        fake.terminate()
        fake.wait(timeout=10)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
