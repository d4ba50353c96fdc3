"""Scenario `s3-sink` of deploy/bench/run: Sluice's S3 sink (Confluent's S3SinkConnector config) from a filled
topic to the local S3 server (deploy/local/s3, SeaweedFS), against the ceiling of uploading the same bytes in the
same number of objects with a plain client (boto3 from the SeaweedFS venv, multipart in 25 MiB parts, one thread).

Per size: MB/s of record payload, CPU seconds of the worker, MB/s per CPU second, peak RSS (VmHWM of a fresh
worker). No S3 sink runs in Kafka Connect here (neither Confluent's nor Aiven's can be downloaded), so Sluice only.
Formats: JsonFormat (StringConverter values, the lines as written) and ParquetFormat (JsonConverter with schemas:
each record a struct {id int64, payload string} whose payload makes the record's data about the same size; snappy,
Confluent's parquet.codec default), each MB/s of record payload against the plain upload of the same object bytes.
"""

import os
import re
import subprocess
import time
import urllib.parse

FLUSH_SIZE = 100_000


def _flush_size(count):
    """Objects of 100,000 records; at smoke sizes 10 objects."""
    return min(FLUSH_SIZE, max(count // 10, 1))


def _s3_env(h):
    script = os.path.join(h.REPO, "deploy", "local", "s3")
    subprocess.run([script, "up"], check=True, timeout=300)
    text = subprocess.run([script, "env"], check=True, capture_output=True, text=True).stdout
    env = dict(w.split("=", 1) for w in text.split() if "=" in w and w.isascii())
    return script, {k: v for k, v in env.items() if k.startswith("AWS_")}


def _curl(aws, method, path):
    return subprocess.run(
        ["curl", "-s", "-X", method, "--aws-sigv4", f"aws:amz:{aws['AWS_REGION']}:s3",
         "--user", f"{aws['AWS_ACCESS_KEY_ID']}:{aws['AWS_SECRET_ACCESS_KEY']}", aws["AWS_ENDPOINT_URL"] + path],
        check=True, capture_output=True, text=True, timeout=60).stdout


def _objects(aws, bucket, prefix):
    """[(key, size)] under prefix (first 1000: enough here)."""
    xml = _curl(aws, "GET", f"/{bucket}?list-type=2&prefix={urllib.parse.quote(prefix, safe='')}")
    return [(k, int(s)) for k, s in re.findall(r"<Key>([^<]*)</Key>.*?<Size>(\d+)</Size>", xml, re.S)]


CEILING_PY = r"""
import boto3, os, resource, sys, time
from boto3.s3.transfer import TransferConfig
bucket, prefix, path, objects = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
data = open(path, "rb").read()
cfg = TransferConfig(multipart_threshold=25 << 20, multipart_chunksize=25 << 20, max_concurrency=1, use_threads=False)
per = len(data) // objects
import io
t0 = time.monotonic()
for i in range(objects):
    s3.upload_fileobj(io.BytesIO(data[i * per:(i + 1) * per]), bucket, f"{prefix}/{i:04d}.json", Config=cfg)
el = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(el, ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
"""


def _schema_lines(path, count, size):
    """count JsonConverter envelopes (schemas on) of a struct {id, payload} with a payload of `size - 8` bytes."""
    if os.path.exists(path):
        return path
    head = ('{"schema":{"type":"struct","name":"bench","optional":false,"fields":[{"field":"id","type":"int64",'
            '"optional":false},{"field":"payload","type":"string","optional":false}]},"payload":{"id":')
    filler = "x" * max(size - 8, 1)
    with open(path, "w") as f:
        for i in range(count):
            f.write(f'{head}{i},"payload":"{filler}"}}}}\n')
    return path


def _parquet(env, h, aws, bucket, size, count):
    path = _schema_lines(os.path.join(env.data, f"struct-{count}x{size}.json"), count, size)
    topic = env.uniq(f"s3-pq-in-{size}")
    h.log(f"filling {topic} with {count} schema'd records of ~{size} B of data (kcat)")
    h.fill_topic(env, topic, path, count)
    want_objects = count // _flush_size(count)
    w = h.Worker(env, h.SLUICE, f"s3-pq-{size}").start()
    try:
        w.wait_rest()
        prefix = env.uniq(f"parquet-{size}")
        config = {"connector.class": "io.confluent.connect.s3.S3SinkConnector", "tasks.max": "1",
                  "topics": topic, "s3.bucket.name": bucket, "s3.region": aws.get("AWS_REGION", "us-east-1"),
                  "topics.dir": prefix, "flush.size": str(_flush_size(count)),
                  "format.class": "io.confluent.connect.s3.format.parquet.ParquetFormat",
                  "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                  "value.converter.schemas.enable": "true"}
        cpu0 = h.cpu_s(w.proc.pid)
        t0 = time.monotonic()
        h.create_connector(w.base, env.uniq("s3-sink-pq"), config)
        h.wait_until(f"{want_objects} objects under {prefix}",
                     lambda: len(_objects(aws, bucket, prefix + "/")) >= want_objects,
                     env.args.timeout, interval=0.05, proc=w.proc)
        elapsed = time.monotonic() - t0
        cpu = h.cpu_s(w.proc.pid) - cpu0
        with open(f"/proc/{w.proc.pid}/status") as f:
            hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        objs = _objects(aws, bucket, prefix + "/")
        total = sum(sz for _, sz in objs)
        return {"seconds": elapsed, "records_per_s": count / elapsed, "payload_mb_per_s": count * size / elapsed / 1e6,
                "object_mb_per_s": total / elapsed / 1e6, "cpu_s": cpu,
                "payload_mb_per_cpu_s": count * size / 1e6 / cpu if cpu else None,
                "peak_rss_mb": hwm / 1024, "objects": len(objs), "object_bytes": total}
    finally:
        w.stop()
        try:
            os.remove(path)
        except OSError:
            pass


def _server_cpu(h):
    """CPU seconds the S3 server's processes (SeaweedFS, `weed`) have used so far: the sink and the plain upload share
    the cores with it, so the figures say how much of each run's CPU was the server's."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "weed":
                    continue
        except OSError:
            continue
        total += h.cpu_s(int(pid)) or 0.0
    return total


def scenario_s3_sink(env, sizes, h):
    script, aws = _s3_env(h)
    os.environ.update(aws)  # the workers inherit the standard AWS variables (no store.url in the config)
    bucket = re.sub(r"[^a-z0-9-]", "-", f"bench-{env.run_id}".lower())[:63].strip("-")
    subprocess.run([script, "make-bucket", bucket], check=True, timeout=60)
    venv_python = None
    for d in sorted(os.listdir(h.CACHE)):
        if d.startswith("seaweedfs-") and os.path.exists(os.path.join(h.CACHE, d, "bin", "python")):
            venv_python = os.path.join(h.CACHE, d, "bin", "python")
    out = {}
    for size, count in sizes:
        input_path = h.write_lines(os.path.join(env.data, f"lines-{count}x{size}.txt"), count, size)
        topic = env.uniq(f"s3-in-{size}")
        h.log(f"filling {topic} with {count} records of {size} B (kcat)")
        h.fill_topic(env, topic, input_path, count)
        want_objects = count // _flush_size(count)
        res = {}
        w = h.Worker(env, h.SLUICE, f"s3-{size}").start()
        try:
            w.wait_rest()
            prefix = env.uniq(f"json-{size}")
            config = {"connector.class": "io.confluent.connect.s3.S3SinkConnector", "tasks.max": "1",
                      "topics": topic, "s3.bucket.name": bucket, "s3.region": aws.get("AWS_REGION", "us-east-1"),
                      "topics.dir": prefix, "flush.size": str(_flush_size(count))}
            cpu0, server0 = h.cpu_s(w.proc.pid), _server_cpu(h)
            t0 = time.monotonic()
            h.create_connector(w.base, env.uniq("s3-sink"), config)
            h.wait_until(f"{want_objects} objects under {prefix}",
                         lambda: len(_objects(aws, bucket, prefix + "/")) >= want_objects,
                         env.args.timeout, interval=0.05, proc=w.proc)
            elapsed = time.monotonic() - t0
            cpu, server_cpu = h.cpu_s(w.proc.pid) - cpu0, _server_cpu(h) - server0
            with open(f"/proc/{w.proc.pid}/status") as f:
                hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
            objs = _objects(aws, bucket, prefix + "/")
            total = sum(s for _, s in objs)
            res["json"] = {"seconds": elapsed, "payload_mb_per_s": count * size / elapsed / 1e6,
                           "object_mb_per_s": total / elapsed / 1e6, "cpu_s": cpu,
                           "object_mb_per_cpu_s": total / 1e6 / cpu if cpu else None,
                           "peak_rss_mb": hwm / 1024, "objects": len(objs), "object_bytes": total,
                           "s3_server_cpu_s": server_cpu}
        finally:
            w.stop()
        res["parquet"] = _parquet(env, h, aws, bucket, size, count)
        if venv_python:
            blob = os.path.join(env.data, f"s3-ceiling-{size}.json")
            with open(blob, "wb") as f:
                f.write(b"x" * res["json"]["object_bytes"])
            server0 = _server_cpu(h)
            r = subprocess.run([venv_python, "-c", CEILING_PY, bucket, env.uniq(f"ceiling-{size}"), blob,
                                str(max(want_objects, 1))], check=True, capture_output=True, text=True,
                               timeout=1800, env=os.environ)
            server_cpu = _server_cpu(h) - server0
            el, cpu, maxrss = (float(x) for x in r.stdout.split())
            os.remove(blob)
            res["ceiling_boto3"] = {"seconds": el, "object_mb_per_s": res["json"]["object_bytes"] / el / 1e6,
                                    "cpu_s": cpu, "peak_rss_mb": maxrss / 1024, "s3_server_cpu_s": server_cpu}
            res["json"]["fraction_of_ceiling"] = res["json"]["object_mb_per_s"] / res["ceiling_boto3"]["object_mb_per_s"]
        out[f"{size}B"] = res
        h.log(f"s3-sink {size} B: {res}")
    return out
