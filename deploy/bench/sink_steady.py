#!/usr/bin/env python3
"""Sluice-only sink runs that separate fixed start-up from steady state (not a scenario of deploy/bench/run).

    deploy/bench/sink_steady.py s3   --bin <release dir> [--bin <other release dir>] [--reps N] [--perf]
    deploy/bench/sink_steady.py jdbc --bin <release dir> [--bin <other release dir>] [--reps N] [--perf]

s3: the `s3-sink` scenario's 100 B JSON half (1,000,000 lines, StringConverter, JsonFormat, flush.size 100,000)
into the bucket `perfh` of deploy/local/s3; jdbc: the `jdbc-sink` scenario's insert half (1,000,000 keyed
JsonConverter records, Debezium's connector config, a table of its own) into deploy/local/postgres. Each run starts a
fresh `sluice-standalone`, waits 2 s, creates the connector and reports, as one JSON line: the time from
`POST /connectors` until done, when the task started and its partitions were assigned (from the worker log), when the
first and the last output appeared (S3: each object as seen by listing every 50 ms; PostgreSQL: the rows'
`written_at`), the steady-state rate between the first and the last output, the worker's CPU seconds and per-thread
CPU seconds (/proc/PID/task). Several `--bin` dirs are alternated (A/B). `--perf` records `perf record -g` of the
worker into ~/perfwork. The broker is H_BOOT (default 127.0.0.1:39092: start one with SLUICE_RUN_DIR=<dir>
SLUICE_KAFKA_PORT=39092 SLUICE_KAFKA_CONTROLLER_PORT=39093 deploy/local/kafka up); the topics are filled once (kcat).
H_EXTRA='{"key": "value", ...}' adds connector config keys (e.g. consumer.override.* for an experiment).
"""
import argparse
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "deploy", "bench"))
import jdbc_sink as J  # noqa: E402

BOOT = os.environ.get("H_BOOT", "127.0.0.1:39092")
WORK = os.path.expanduser(os.environ.get("H_WORK", "~/perfwork"))
CLK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / CLK


def others_cpu():
    """CPU seconds so far of the processes the run shares the cores with, per process: the broker (its command line
    names BOOT's port in its run dir or config), SeaweedFS and PostgreSQL's server processes."""
    out = {}
    port = BOOT.rsplit(":", 1)[-1]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            if comm == "postgres":
                kind = "postgres"
            elif "weed" in comm and " server" in cmd:
                kind = "seaweedfs"
            elif comm == "java" and "kafka.Kafka" in cmd and (port in cmd or "steady-run" in cmd):
                kind = "kafka"
            else:
                continue
            out[(pid, kind)] = cpu(pid)
        except (OSError, ValueError, IndexError):
            pass
    return out


def threads(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            x = s.rsplit(")", 1)[1].split()
            out[(t, name)] = (int(x[11]) + int(x[12])) / CLK
        except OSError:
            pass
    return out


def http(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_offset(topic):
    r = subprocess.run(["kcat", "-Q", "-b", BOOT, "-t", f"{topic}:0:-1"], capture_output=True, text=True)
    m = re.search(r"\[0\] offset (\d+)", r.stdout)
    return int(m.group(1)) if m else -1


def fill_s3(n):
    topic = f"h-s3-{n}"
    if end_offset(topic) == n:
        return topic
    path = os.path.join(WORK, f"lines-{n}.txt")
    filler = "abcdefghijklmnopqrstuvwxyz0123456789" * 5
    with open(path, "w") as f:
        f.write("".join(f"{i:012d} " + filler[i % 36:i % 36 + 87] + "\n" for i in range(n)))
    with open(path, "rb") as f:
        subprocess.run(["kcat", "-P", "-b", BOOT, "-t", topic, "-X", "linger.ms=20", "-X", "batch.num.messages=10000"],
                       stdin=f, check=True)
    os.remove(path)
    assert end_offset(topic) == n
    return topic


def fill_jdbc(n):
    topic = f"h-jdbc-{n}"
    if end_offset(topic) == n:
        return topic
    kv, csv = os.path.join(WORK, "j.kv"), os.path.join(WORK, "j.csv")
    J.write_inputs(kv, csv, n)
    with open(kv, "rb") as f:
        subprocess.run(["kcat", "-P", "-b", BOOT, "-t", topic, "-K", "\t", "-X", "linger.ms=20",
                        "-X", "batch.num.messages=10000"], stdin=f, check=True)
    os.remove(kv)
    os.remove(csv)
    assert end_offset(topic) == n
    return topic


def aws():
    text = subprocess.run([os.path.join(REPO, "deploy/local/s3"), "env"], capture_output=True, text=True).stdout
    return {k: v for k, v in (w.split("=", 1) for w in text.split() if "=" in w) if k.startswith("AWS_")}


def s3_objects(a, bucket, prefix):
    r = subprocess.run(["curl", "-s", "--aws-sigv4", f"aws:amz:{a['AWS_REGION']}:s3", "--user",
                        f"{a['AWS_ACCESS_KEY_ID']}:{a['AWS_SECRET_ACCESS_KEY']}",
                        f"{a['AWS_ENDPOINT_URL']}/{bucket}?list-type=2&prefix={urllib.parse.quote(prefix + '/', safe='')}"],
                       capture_output=True, text=True)
    return re.findall(r"<Key>([^<]*)</Key>", r.stdout)


def run_one(args, kind, topic, n, tag):
    port = free_port()
    d = os.path.join(WORK, "w", tag)
    os.makedirs(d, exist_ok=True)
    props = {"bootstrap.servers": BOOT, "key.converter": "org.apache.kafka.connect.storage.StringConverter",
             "value.converter": "org.apache.kafka.connect.storage.StringConverter",
             "offset.storage.file.filename": os.path.join(d, "offsets"), "offset.flush.interval.ms": "1000",
             "listeners": f"http://127.0.0.1:{port}"}
    with open(os.path.join(d, "worker.properties"), "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in props.items()))
    env = dict(os.environ)
    a = aws()
    env.update(a)
    log = open(os.path.join(d, "worker.log"), "w")
    p = subprocess.Popen([os.path.join(args.bin, "sluice-standalone"), os.path.join(d, "worker.properties")],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        while http("GET", base + "/")[0] != 200:
            time.sleep(0.05)
        time.sleep(2)
        name = f"{tag}"
        db = J.pg_env()
        if kind == "s3":
            bucket = "perfh"
            subprocess.run([os.path.join(REPO, "deploy/local/s3"), "make-bucket", bucket], capture_output=True)
            prefix = tag
            cfg = {"connector.class": "io.confluent.connect.s3.S3SinkConnector", "tasks.max": "1", "topics": topic,
                   "s3.bucket.name": bucket, "s3.region": a.get("AWS_REGION", "us-east-1"), "topics.dir": prefix,
                   "flush.size": "100000"}
        else:
            table = tag.replace("-", "_")
            J.create_table(db, table, keyed=False)
            cfg = J.connector_config(db, topic, table, "insert")
        cfg.update(json.loads(os.environ.get("H_EXTRA", "{}")))
        perf = None
        c0, th0, o0 = cpu(p.pid), threads(p.pid), others_cpu()
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(p.pid), "-o",
                                     os.path.join(WORK, f"perf-{tag}.data")], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        t0, t0e = time.monotonic(), time.time()
        st, body = http("POST", base + "/connectors", {"name": name, "config": cfg})
        assert st in (200, 201), body
        seen = {}
        while True:
            if p.poll() is not None:
                raise SystemExit("worker died")
            if kind == "s3":
                objs = s3_objects(a, bucket, prefix)
                now = time.monotonic() - t0
                for o in objs:
                    seen.setdefault(o, now)
                if len(objs) >= n // 100000:
                    break
                time.sleep(0.05)
            else:
                cnt, _ = J.finished(db, table, t0e)
                if cnt >= n:
                    break
                time.sleep(0.5)
            if time.monotonic() - t0 > 90:
                raise SystemExit("timeout")
        wall = time.monotonic() - t0
        c1, th1, o1 = cpu(p.pid), threads(p.pid), others_cpu()
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        res = {"tag": tag, "wall_polled": round(wall, 3), "cpu": round(c1 - c0, 2)}
        others = {}
        for (pid, what), c in o1.items():
            others[what] = others.get(what, 0.0) + c - o0.get((pid, what), 0.0)
        # the other processes on the same cores during the run (ended processes are not counted)
        res["others_cpu"] = {k: round(v, 2) for k, v in sorted(others.items())}
        if kind == "s3":
            ts = sorted(seen.values())
            res.update(first_obj=round(ts[0], 3), last_obj=round(ts[-1], 3),
                       steady_rec_s=round((n - 100000) / (ts[-1] - ts[0])) if len(ts) > 1 else None)
        else:
            out = J.psql(db, f"SELECT extract(epoch FROM min(written_at)), extract(epoch FROM max(written_at)) "
                             f"FROM {table};").strip()
            lo, hi = (float(x) for x in out.split("|"))
            res.update(e2e=round(hi - t0e, 3), first_row=round(lo - t0e, 3), rows_s=round(n / (hi - t0e)),
                       steady_rows_s=round((n - 1) / (hi - lo)))
            J.psql(db, f"DROP TABLE IF EXISTS {table};")
        # when partitions were assigned, from the log (time stamps are UTC iso)
        with open(os.path.join(d, "worker.log")) as f:
            for line in f:
                if "partitions assigned" in line or "sink task started" in line:
                    m = re.match(r"(\S+)", line)
                    try:
                        tt = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
                        key = "assigned" if "assigned" in line else "task_started"
                        res[key] = round(tt - t0e, 3)
                    except ValueError:
                        pass
        per = sorted(((th1.get(k, 0) - th0.get(k, 0), k[1]) for k in th1), reverse=True)
        agg = {}
        for v, nm in per:
            agg[nm] = agg.get(nm, 0) + v
        res["threads"] = {nm: round(v, 2) for nm, v in sorted(agg.items(), key=lambda x: -x[1]) if v >= 0.02}
        http("DELETE", base + f"/connectors/{name}")
        return res
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["s3", "jdbc"])
    ap.add_argument("--bin", action="append", required=True, help="one or more bin dirs (alternated)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--perf", action="store_true")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    topic = fill_s3(args.n) if args.kind == "s3" else fill_jdbc(args.n)
    bins = args.bin
    for rep in range(args.reps):
        for i, b in enumerate(bins if rep % 2 == 0 else list(reversed(bins))):
            a2 = argparse.Namespace(**vars(args))
            a2.bin = b
            tag = f"{args.kind}-{os.path.basename(os.path.dirname(b.rstrip('/')))}-{int(time.time() * 1000) % 10**8}"
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            r = run_one(a2, args.kind, topic, args.n, tag)
            r["bin"], r["load"] = b, load
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
