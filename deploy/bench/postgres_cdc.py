"""Scenario `cdc-postgres`: Debezium's PostgresConnector on Sluice and Debezium PostgreSQL 3.6.1.Final in Kafka Connect.

Both run as standalone workers with JsonConverter (schemas on), one at a time, against the same PostgreSQL
(PGHOST / PGPORT / PGUSER / PGPASSWORD / PGDATABASE, as `deploy/local/postgres env` prints them), plugin.name=pgoutput,
each run with its own table, slot and filtered publication.
- streaming: snapshot.mode=no_data, then N rows (~100 B each) are committed as N/1000 transactions of 1,000 rows;
  measured from the first commit until the topic holds N records: events/s, worker CPU seconds, peak RSS;
- snapshot: a table of N rows, snapshot.mode=initial: time until the topic holds N records.
The Debezium jars come from deploy/compat/plugins/debezium-postgres.
"""

import os
import re
import subprocess
import threading
import time

JSON = "org.apache.kafka.connect.json.JsonConverter"


def pg_env():
    host = os.environ.get("PGHOST")
    if not host:
        return None
    return {"host": host, "port": os.environ.get("PGPORT", "5432"), "user": os.environ.get("PGUSER", "postgres"),
            "password": os.environ.get("PGPASSWORD", ""), "dbname": os.environ.get("PGDATABASE", "postgres")}


def sql(db, script):
    env = dict(os.environ, PGPASSWORD=db["password"])
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", db["host"], "-p", db["port"],
                        "-U", db["user"], "-d", db["dbname"]], input=script.encode(), env=env, capture_output=True)
    if r.returncode:
        raise RuntimeError(f"psql failed: {r.stderr.decode()[:500]}")
    return r.stdout.decode()


def fill(db, table, start, count, per_tx=1000):
    stmts = []
    for b in range(start, start + count, per_tx):
        last = min(b + per_tx - 1, start + count - 1)
        stmts.append(f"INSERT INTO {table} SELECT g, repeat('x', 92) FROM generate_series({b}, {last}) g;")
    sql(db, "\n".join(stmts))


def connector_config(db, prefix, table, mode):
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "tasks.max": "1",
        "database.hostname": db["host"], "database.port": db["port"], "database.user": db["user"],
        "database.password": db["password"], "database.dbname": db["dbname"], "topic.prefix": prefix,
        "plugin.name": "pgoutput", "slot.name": prefix, "publication.name": prefix + "_pub",
        "publication.autocreate.mode": "filtered", "table.include.list": f"public\\.{table}",
        "snapshot.mode": mode, "key.converter": JSON, "value.converter": JSON,
    }


def cleanup(db, prefix, table):
    for _ in range(50):
        try:
            sql(db, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    f"WHERE slot_name = '{prefix}' AND NOT active;")
            if not sql(db, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{prefix}';").strip():
                break
        except RuntimeError:
            pass
        time.sleep(0.2)
    sql(db, f"DROP PUBLICATION IF EXISTS {prefix}_pub; DROP TABLE IF EXISTS {table};")


def measure(run, env, w, db, system, count, phase):
    table = env.uniq(f"cdc_{phase}").replace("-", "_")
    prefix = env.uniq(f"cdc{system}").replace("-", "_")
    sql(db, f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY, payload varchar(100) NOT NULL);")
    if phase == "snapshot":
        fill(db, table, 1, count, per_tx=50_000)  # not timed: larger transactions fill a 10M-row table sooner
    topic = f"{prefix}.public.{table}"
    cfg = connector_config(db, prefix, table, "initial" if phase == "snapshot" else "no_data")
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
            # streaming starts once the slot exists
            run.wait_until("the replication slot", lambda: sql(
                db, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = '{prefix}' AND active;").strip() == "1",
                120, interval=0.2, proc=w.proc)
            time.sleep(2)
            cpu0 = run.cpu_s(w.proc.pid)
            t0 = time.monotonic()
            fill(db, table, 1, count)
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
    cleanup(db, prefix, table)
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


def create_lag_topic(run, env, topic):
    """The change topic, created with LogAppendTime: each record carries the time the broker appended it, for the
    commit -> Kafka lag."""
    r = env.kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", env.bootstrap, "--create",
                       "--topic", topic, "--partitions", "1", "--replication-factor", "1",
                       "--config", "message.timestamp.type=LogAppendTime", timeout=120)
    if r.returncode != 0:
        raise run.BenchError(f"creating {topic}: {r.stderr.strip()[-500:]}")


def delete_topic(env, topic):
    """1,000,000 events with schemas are ~3 GB: free the disk before the next run."""
    env.kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", env.bootstrap, "--delete",
                   "--topic", topic, timeout=120)


SOURCE_TS = re.compile(rb'"ts_ms":(\d+)')


def commit_lag_ms(env, topic):
    """Sorted per-event lag from the commit in PostgreSQL (the first `ts_ms` of the payload: source.ts_ms, the
    transaction's commit time) to the append in Kafka (the topic's LogAppendTime), in ms; same clock, one machine."""
    proc = subprocess.Popen(["kcat", "-C", "-b", env.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                             "-f", "%T %s\n"], stdout=subprocess.PIPE)
    lags = []
    for line in proc.stdout:
        ts, _, payload = line.partition(b" ")
        m = SOURCE_TS.search(payload)
        if m and ts.isdigit():
            lags.append(int(ts) - int(m.group(1)))
    proc.wait()
    lags.sort()
    return lags


def scenario(run, env):
    db = pg_env()
    if db is None:
        raise run.BenchError("cdc-postgres needs PostgreSQL: deploy/local/postgres up, then export "
                             "`deploy/local/postgres env`")
    plugin = subprocess.run([os.path.join(run.REPO, "deploy", "compat", "plugins", "debezium-postgres")],
                            capture_output=True, text=True, check=True).stdout.strip()
    plugins = os.path.join(env.data, "cdc-pg-plugins")
    os.makedirs(plugins, exist_ok=True)
    if not os.path.exists(os.path.join(plugins, "debezium-postgres")):
        os.symlink(plugin, os.path.join(plugins, "debezium-postgres"))
    count = env.args.cdc_records
    extra = {"key.converter": JSON, "value.converter": JSON, "plugin.path": plugins}
    out = {"records": count, "snapshot_records": env.args.cdc_snapshot_records, "record_bytes": 100}
    for phase in env.args.cdc_phases:
        n = env.args.cdc_snapshot_records if phase == "snapshot" else count
        runs = {run.SLUICE: [], run.CONNECT: []}
        for rep in range(env.args.reps):
            for system in run.order(rep):
                w = run.Worker(env, system, f"cdc-pg-{phase}", extra=extra).start()
                try:
                    w.wait_rest()
                    r = measure(run, env, w, db, system, n, phase)
                finally:
                    w.stop()
                lag = (f" lag p50 {r['lag_p50_ms']:.0f} ms p99 {r['lag_p99_ms']:.0f} ms"
                       if r.get("lag_p50_ms") is not None else "")
                run.log(f"cdc-postgres {phase} {n} rep {rep + 1} {run.NAMES[system]}: {r['seconds']:.2f}s "
                        f"{r['events_per_s']:,.0f} ev/s cpu {r['cpu_s']:.1f}s peak {r['peak_rss_mb'] or 0:.0f} MB{lag}")
                runs[system].append(r)
        metrics = {"events_per_s": "events/s", "seconds": "s", "cpu_s": "CPU s",
                   "events_per_cpu_s": "events per CPU s", "peak_rss_mb": "MB"}
        if phase == "streaming":
            metrics.update({"lag_p50_ms": "ms", "lag_p99_ms": "ms", "lag_max_ms": "ms"})
        out[phase] = run.per_system(runs, metrics)
    return out
