"""Scenario `cdc-mysql`: Debezium's MariaDbConnector on Sluice and Debezium MariaDB 3.5.0.Final in Kafka Connect.

Both run as standalone workers with JsonConverter (schemas on), one at a time, against the same MariaDB
(MYSQL_HOST / MYSQL_TCP_PORT / MYSQL_USER / MYSQL_PWD, as `deploy/local/mysql env` prints them).
- streaming: snapshot.mode=no_data, then N rows (~100 B each) are committed as N/1000 transactions of 1,000 rows;
  measured from the first commit until the topic holds N records: events/s, worker CPU seconds, peak RSS, and the
  per-event lag from the binlog event's time (`source.ts_ms`, whole seconds in MariaDB's binlog) to the topic's
  LogAppendTime (p50/p99);
- snapshot: a table of N rows, snapshot.mode=initial: time until the topic holds N records.
The Debezium jars come from deploy/compat/plugins/debezium-mariadb.
"""

import os
import subprocess
import threading
import time

from postgres_cdc import commit_lag_ms, create_lag_topic, delete_topic

JSON = "org.apache.kafka.connect.json.JsonConverter"


def mysql_env():
    host = os.environ.get("MYSQL_HOST")
    if not host:
        return None
    return {"host": host, "port": os.environ.get("MYSQL_TCP_PORT", "3306"),
            "user": os.environ.get("MYSQL_USER", "root"), "password": os.environ.get("MYSQL_PWD", "")}


def sql(db, script):
    env = dict(os.environ, MYSQL_PWD=db["password"])
    r = subprocess.run(["mariadb", "-h", db["host"], "-P", db["port"], "-u", db["user"], "-N", "-B"],
                       input=script.encode(), env=env, capture_output=True)
    if r.returncode:
        raise RuntimeError(f"mariadb failed: {r.stderr.decode()[:500]}")
    return r.stdout.decode()


def fill(db, database, start, count, per_tx=1000):
    stmts = [f"USE {database};"]
    for b in range(start, start + count, per_tx):
        last = min(b + per_tx - 1, start + count - 1)
        stmts.append(f"INSERT INTO t SELECT seq, REPEAT('x', 92) FROM seq.seq_{b}_to_{last};")
    sql(db, "\n".join(stmts))


def connector_config(db, prefix, database, server_id, mode):
    return {
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector", "tasks.max": "1",
        "database.hostname": db["host"], "database.port": db["port"], "database.user": db["user"],
        "database.password": db["password"], "database.server.id": str(server_id), "topic.prefix": prefix,
        "database.include.list": database, "snapshot.mode": mode,
        "schema.history.internal.kafka.topic": prefix + "-history",
        "schema.history.internal.kafka.bootstrap.servers": "",  # set by the caller
        "key.converter": JSON, "value.converter": JSON,
    }


def measure(run, env, w, db, system, count, phase):
    database = env.uniq(f"cdc_{phase}").replace("-", "_")
    prefix = env.uniq(f"cdc{system}").replace("-", "_")
    sql(db, f"CREATE DATABASE IF NOT EXISTS seq; DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}; "
            f"CREATE TABLE {database}.t (id BIGINT PRIMARY KEY, payload VARCHAR(100) NOT NULL);")
    if phase == "snapshot":
        fill(db, database, 1, count, per_tx=50_000)  # not timed: larger transactions fill a 10M-row table sooner
    topic = f"{prefix}.{database}.t"
    cfg = connector_config(db, prefix, database, 30000 + int(time.time()) % 10000,
                           "initial" if phase == "snapshot" else "no_data")
    cfg["schema.history.internal.kafka.bootstrap.servers"] = env.bootstrap
    if phase == "streaming":
        create_lag_topic(run, env, topic)
    name = env.uniq("cdc")
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            r = run.rss_kb(w.proc.pid)
            if r:
                samples.append(r)
            stop.wait(0.1)
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    try:
        cpu0 = run.cpu_s(w.proc.pid)
        t0 = time.monotonic()
        run.create_connector(w.base, name, cfg)
        if phase == "streaming":
            run.wait_until(f"{name} RUNNING", run.connector_running(w.base, name), 120, interval=0.2, proc=w.proc)
            time.sleep(3)  # the binlog reader is connected
            cpu0 = run.cpu_s(w.proc.pid)
            t0 = time.monotonic()
            fill(db, database, 1, count)
            commit_s = time.monotonic() - t0
        run.wait_until(f"{count} records in {topic}", lambda: env.offsets.end_offset(topic) >= count,
                       env.args.timeout, interval=0.05, proc=w.proc)
        elapsed = time.monotonic() - t0
        cpu = run.cpu_s(w.proc.pid) - cpu0
    finally:
        stop.set()
        th.join()
    run.delete_connector(w.base, name)
    lag = commit_lag_ms(env, topic) if phase == "streaming" else None
    delete_topic(env, topic)
    sql(db, f"DROP DATABASE {database}")
    res = {"seconds": elapsed, "events_per_s": count / elapsed, "cpu_s": cpu,
           "events_per_cpu_s": count / cpu if cpu else None,
           "peak_rss_mb": max(samples) / 1024 if samples else None}
    if phase == "streaming":
        res["commit_s"] = commit_s
        if lag:
            res["lag_p50_ms"] = run.percentile(lag, 0.50)
            res["lag_p99_ms"] = run.percentile(lag, 0.99)
            res["lag_max_ms"] = lag[-1]
    return res


def scenario(run, env):
    db = mysql_env()
    if db is None:
        raise run.BenchError("cdc-mysql needs MariaDB: deploy/local/mysql up, then export `deploy/local/mysql env`")
    plugin = subprocess.run([os.path.join(run.REPO, "deploy", "compat", "plugins", "debezium-mariadb")],
                            capture_output=True, text=True, check=True).stdout.strip()
    plugins = os.path.join(env.data, "cdc-plugins")
    os.makedirs(plugins, exist_ok=True)
    if not os.path.exists(os.path.join(plugins, "debezium-mariadb")):
        os.symlink(plugin, os.path.join(plugins, "debezium-mariadb"))
    count = env.args.cdc_records
    extra = {"key.converter": JSON, "value.converter": JSON, "plugin.path": plugins}
    out = {"records": count, "snapshot_records": env.args.cdc_snapshot_records, "record_bytes": 100}
    for phase in env.args.cdc_phases:
        n = env.args.cdc_snapshot_records if phase == "snapshot" else count
        runs = {run.SLUICE: [], run.CONNECT: []}
        for rep in range(env.args.reps):
            for system in run.order(rep):
                w = run.Worker(env, system, f"cdc-{phase}", extra=extra).start()
                try:
                    w.wait_rest()
                    r = measure(run, env, w, db, system, n, phase)
                finally:
                    w.stop()
                lag = (f" lag p50 {r['lag_p50_ms']:.0f} ms p99 {r['lag_p99_ms']:.0f} ms"
                       if r.get("lag_p50_ms") is not None else "")
                run.log(f"cdc-mysql {phase} {n} rep {rep + 1} {run.NAMES[system]}: {r['seconds']:.2f}s "
                        f"{r['events_per_s']:,.0f} ev/s cpu {r['cpu_s']:.1f}s peak {r['peak_rss_mb'] or 0:.0f} MB{lag}")
                runs[system].append(r)
        metrics = {"events_per_s": "events/s", "seconds": "s", "cpu_s": "CPU s",
                   "events_per_cpu_s": "events per CPU s", "peak_rss_mb": "MB"}
        if phase == "streaming":
            metrics.update({"lag_p50_ms": "ms", "lag_p99_ms": "ms", "lag_max_ms": "ms"})
        out[phase] = run.per_system(runs, metrics)
    return out
