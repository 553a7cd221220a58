"""Real S3 API servers on loopback, for the loader's benchmark and the object-storage tests.

- moto's server (Python; ``moto[server]``);
- s3rver (Node.js, from npm: ``scripts/setup.sh`` installs it into ``.tools/``, taught suffix
  ranges by ``scripts/s3rver_suffix_ranges.py``; ``SDFKIT_S3RVER`` names another copy), which
  keeps objects as files and answers range requests from them;
- :class:`LatencyProxy`, a TCP proxy on 127.0.0.1 that holds every byte a client sends for a
  fixed delay before passing it on, so that each request reaches the server that much later (a
  remote region's time to first byte), and counts the HTTP requests that pass.

    python benchmarks/s3_servers.py             # one range request's cost on each, with and without 20 ms
    python benchmarks/s3_servers.py --backends  # concurrent range requests to s3rver: s3fs against obstore
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
S3RVER_KEY = "S3RVER"
"""s3rver's access key id and secret (its defaults)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, what: str) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before answering")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} in 10 s")


def start_moto_server() -> tuple[str, subprocess.Popen]:
    """moto's S3 server on a free port of 127.0.0.1, answering: (its endpoint URL, the process)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(port, server, "moto's server")
    return f"http://127.0.0.1:{port}", server


def s3rver_command() -> tuple[list[str] | None, str]:
    """(the command that runs s3rver, "") or (None, why it cannot run here)."""
    if shutil.which("node") is None:
        return None, "Node.js is not installed (s3rver runs on it)"
    for candidate in (
        os.environ.get("SDFKIT_S3RVER"),
        ROOT / ".tools/node_modules/.bin/s3rver",
        shutil.which("s3rver"),
    ):
        if candidate and Path(candidate).exists():
            package = Path(candidate).resolve().parents[1]  # .bin/s3rver -> s3rver/bin/s3rver.js
            store = package / "lib/stores/filesystem.js"
            if store.exists() and "sdfkit: suffix ranges" not in store.read_text():
                return (
                    None,
                    f"s3rver at {package} serves suffix ranges wrong: python scripts/s3rver_suffix_ranges.py {package}",
                )
            return [str(candidate)], ""
    return None, "s3rver is not installed (bash scripts/setup.sh installs it into .tools/ with npm)"


def start_s3rver(folder: Path, bucket: str) -> tuple[str, subprocess.Popen]:
    """s3rver on a free port of 127.0.0.1 with its objects in ``folder`` and ``bucket`` made:
    (its endpoint URL, the process). Its keys: :data:`S3RVER_KEY`, both."""
    command, why = s3rver_command()
    if command is None:
        raise RuntimeError(why)
    port = free_port()
    server = subprocess.Popen(
        [*command, "-d", str(folder), "-a", "127.0.0.1", "-p", str(port), "-s", "--configure-bucket", bucket],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(port, server, "s3rver")
    return f"http://127.0.0.1:{port}", server


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 in its own process, forwarding to ``127.0.0.1:target``: every byte
    a client sends is held ``delay`` seconds (then passed on in order), answers come back at once,
    and each HTTP request (a header block, its body skipped by Content-Length) is counted.
    Bounded: at most ``connections`` open at once, 64 chunks queued per connection.

        >>> with LatencyProxy(9000, delay=0.02) as proxy:  # http://127.0.0.1:{proxy.port}
        ...     ...
        ...     print(proxy.requests)
    """

    def __init__(self, target: int, delay: float = 0.0, connections: int = 1024):
        self.target, self.delay, self.connections = target, delay, connections
        context = multiprocessing.get_context("spawn")
        self._count = context.Value("q", 0)
        self.port = free_port()
        self._process = context.Process(
            target=_serve, args=(self.port, target, delay, connections, self._count), daemon=True
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        """HTTP requests passed on so far."""
        return int(self._count.value)

    def start(self) -> LatencyProxy:
        self._process.start()
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the latency proxy did not answer on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve(port: int, target: int, delay: float, connections: int, count) -> None:
    asyncio.run(_proxy(port, target, delay, connections, count))


async def _proxy(port: int, target: int, delay: float, connections: int, count) -> None:
    slots = asyncio.Semaphore(connections)

    async def handle(client_reader, client_writer):
        async with slots:
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(
                _held(client_reader, server_writer, delay, count),
                _copy(server_reader, client_writer),
                return_exceptions=True,
            )
            for writer in (client_writer, server_writer):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 20)
    async with server:
        await server.serve_forever()


async def _copy(reader, writer) -> None:
    while data := await reader.read(1 << 20):
        writer.write(data)
        await writer.drain()
    writer.write_eof()


async def _held(reader, writer, delay: float, count) -> None:
    """Client to server: each chunk passed on ``delay`` after it came, requests counted."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=64)
    counter = _RequestCounter(count)

    async def feed():
        while data := await reader.read(1 << 16):
            counter.feed(data)
            await queue.put((loop.time() + delay, data))
        await queue.put((loop.time() + delay, None))

    async def send():
        while True:
            due, data = await queue.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if data is None:
                writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    await asyncio.gather(feed(), send())


class _RequestCounter:
    """Counts HTTP/1.1 requests in a client's byte stream: header blocks, bodies skipped by their
    Content-Length."""

    def __init__(self, count):
        self.count, self.buffer, self.body = count, b"", 0

    def feed(self, data: bytes) -> None:
        while data:
            if self.body:
                skip = min(self.body, len(data))
                self.body -= skip
                data = data[skip:]
                continue
            self.buffer += data
            data = b""
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data, self.buffer = self.buffer[:end], self.buffer[end + 4 :], b""
            with self.count.get_lock():
                self.count.value += 1
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    self.body = int(value.strip() or 0)


def backends() -> None:
    """Concurrent range requests to one s3rver object through zarr's two object-store adapters:
    ``FsspecStore`` (s3fs; 10 connections, its default, and 64) and ``ObjectStore`` (obstore)."""
    import tempfile

    import obstore.store
    import s3fs
    from zarr.abc.store import RangeByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync
    from zarr.storage import FsspecStore, ObjectStore

    with tempfile.TemporaryDirectory() as tmp:
        endpoint, server = start_s3rver(Path(tmp), "bench")
        try:
            keys = {"key": S3RVER_KEY, "secret": S3RVER_KEY, "client_kwargs": {"endpoint_url": endpoint}}
            s3fs.S3FileSystem(**keys).pipe("bench/object", os.urandom(25 << 20))
            stores = {
                "s3fs, 10 connections": FsspecStore(s3fs.S3FileSystem(asynchronous=True, **keys), path="bench"),
                "s3fs, 64 connections": FsspecStore(
                    s3fs.S3FileSystem(asynchronous=True, config_kwargs={"max_pool_connections": 64}, **keys),
                    path="bench",
                ),
                "obstore": ObjectStore(
                    obstore.store.S3Store(
                        "bench",
                        endpoint=endpoint,
                        access_key_id=S3RVER_KEY,
                        secret_access_key=S3RVER_KEY,
                        region="us-east-1",
                        client_options={"allow_http": True},
                    ),
                    read_only=True,
                ),
            }
            prototype = default_buffer_prototype()
            print(f"{'adapter':<24}{'requests':>10}{'KB each':>9}{'requests/s':>12}{'MB/s':>8}")
            for size, count in ((32_768 * 12, 128), (8 * 32_768 * 12, 64)):
                for name, store in stores.items():

                    async def batch(store=store, size=size, count=count):
                        reads = [
                            store.get("object", prototype, RangeByteRequest(at, at + size))
                            for at in (k * 65_536 % ((25 << 20) - size) for k in range(count))
                        ]
                        return await asyncio.gather(*reads)

                    sync(batch())  # connections made
                    start = time.perf_counter()
                    for _ in range(3):
                        sync(batch())
                    took = (time.perf_counter() - start) / 3
                    print(f"{name:<24}{count:>10}{size >> 10:>9}{count / took:>12.0f}{count * size / took / 1e6:>8.0f}")
        finally:
            server.terminate()


def main() -> None:
    """What one 384 KB range request costs on moto and s3rver, direct and through the proxy."""
    if "--backends" in sys.argv:
        return backends()
    import tempfile

    import boto3

    size = 32_768 * 12
    with tempfile.TemporaryDirectory() as tmp:
        servers = {"moto": start_moto_server()}
        command, why = s3rver_command()
        if command is None:
            print(f"s3rver: skipped: {why}")
        else:
            servers["s3rver"] = start_s3rver(Path(tmp), "bench")
        print(f"{'server':<10}{'delay ms':>9}{'ms per request':>16}{'requests counted':>18}")
        try:
            for name, (endpoint, _) in servers.items():
                port = int(endpoint.rsplit(":", 1)[1])
                key = S3RVER_KEY if name == "s3rver" else "testing"
                direct = boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    aws_access_key_id=key,
                    aws_secret_access_key=key,
                    region_name="us-east-1",
                )
                if name == "moto":
                    direct.create_bucket(Bucket="bench")
                direct.put_object(Bucket="bench", Key="object", Body=os.urandom(25 << 20))
                for delay in (0.0, 0.02):
                    with LatencyProxy(port, delay) as proxy:
                        client = boto3.client(
                            "s3",
                            endpoint_url=proxy.endpoint,
                            aws_access_key_id=key,
                            aws_secret_access_key=key,
                            region_name="us-east-1",
                        )
                        client.get_object(Bucket="bench", Key="object", Range="bytes=0-1023")["Body"].read()
                        start, n = time.perf_counter(), 30
                        for k in range(n):
                            at = k * 4096
                            client.get_object(Bucket="bench", Key="object", Range=f"bytes={at}-{at + size - 1}")[
                                "Body"
                            ].read()
                        took = (time.perf_counter() - start) / n
                        print(f"{name:<10}{delay * 1000:>9.0f}{took * 1000:>16.1f}{proxy.requests:>18}")
        finally:
            for _, process in servers.values():
                process.terminate()


if __name__ == "__main__":
    main()
