"""What one range request costs on moto's S3 server, the remote store of benchmarks/loader.py.

A loader window of 16,384 samples is one range request per array (192 KB of ``sdf/points``):
this times 50 such requests, one after the other, from objects of 1, 3 and 25 MB (a shard of
``sdf/points`` holds 8 shapes: 25 MB), on a moto server on 127.0.0.1. moto answers a range
request by reading the whole object and slicing it (moto/s3/responses.py,
``_handle_range_header``), so the cost grows with the object; the rest is its per-request work.

    python benchmarks/moto_requests.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3_servers import start_moto_server  # noqa: E402


def main() -> None:
    import boto3

    endpoint, server = start_moto_server()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="bench")
        window = 16_384 * 3 * 4
        print(f"{'object':>8}{'ms per 192 KB range GET':>26}{'requests/s':>12}")
        for mb in (1, 3, 25):
            key = f"object-{mb}"
            client.put_object(Bucket="bench", Key=key, Body=os.urandom(mb << 20))
            client.get_object(Bucket="bench", Key=key, Range="bytes=0-1023")["Body"].read()  # warm
            count = 50
            start = time.perf_counter()
            for k in range(count):
                offset = k * 4096
                client.get_object(Bucket="bench", Key=key, Range=f"bytes={offset}-{offset + window - 1}")["Body"].read()
            seconds = (time.perf_counter() - start) / count
            print(f"{mb:>5} MB{seconds * 1000:>26.1f}{1 / seconds:>12.0f}")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
