"""Scenario `jdbc-sink` of deploy/bench/run: the JDBC sink from Kafka into PostgreSQL, Sluice side by side with the
Debezium JDBC sink 3.6.0.Final in Apache Kafka Connect, against two ceilings.

One topic of N records (default --records, 1,000,000; smoke 2,000), keyed, values of ~110 B of payload with their
schema (JsonConverter, schemas.enable=true, ~450 B on the wire): id int64, name string, amount double, flag boolean,
note string. Both systems run the same connector config (io.debezium.connector.jdbc.JdbcSinkConnector, which
Sluice's JDBC sink is drop-in for) in a standalone worker, one system at a time:
- insert: insert.mode=insert, primary.key.mode=none, into a table without a key;
- upsert: insert.mode=upsert, primary.key.mode=record_key, into a table with PRIMARY KEY (id) (all keys new).
Other settings are the defaults on both sides (Debezium's batch.size=500, Kafka Connect's max.poll.records=500).
Each run writes into a table of its own, created beforehand with one more column, `written_at timestamptz DEFAULT
clock_timestamp()`: the time from `POST /connectors` to the last row's `written_at` is the run's time, so the
benchmark can poll for completion rarely and cheaply and still time it to the millisecond. Reported: rows/s, worker
CPU seconds (and PostgreSQL's: every server process, summed), the worker's peak RSS.

Ceilings, on the same rows into the same kind of table: `psql \\copy` of a CSV file (insert), and one client sending
1,000-row `INSERT ... VALUES ... ON CONFLICT (id) DO UPDATE` statements (upsert; psql reading a script).

PostgreSQL: PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE (`eval "$(deploy/local/postgres env)"`), default
deploy/local/postgres's 127.0.0.1:55432 sluice/sluice. The Debezium jars come from deploy/compat/plugins/debezium-jdbc.
"""

import json
import os
import subprocess
import threading
import time

JSON = "org.apache.kafka.connect.json.JsonConverter"
DEBEZIUM_JDBC = "io.debezium.connector.jdbc.JdbcSinkConnector"
COLUMNS = "id bigint NOT NULL, name text, amount double precision, flag boolean, note text"
NOTE = "lorem ipsum dolor sit amet consectetur adipiscing elit"

KEY_SCHEMA = {"type": "struct", "name": "bench.Key", "optional": False,
              "fields": [{"field": "id", "type": "int64", "optional": False}]}
VALUE_SCHEMA = {"type": "struct", "name": "bench.Row", "optional": False, "fields": [
    {"field": "id", "type": "int64", "optional": False},
    {"field": "name", "type": "string", "optional": True},
    {"field": "amount", "type": "double", "optional": True},
    {"field": "flag", "type": "boolean", "optional": True},
    {"field": "note", "type": "string", "optional": True}]}


def pg_env():
    return {"host": os.environ.get("PGHOST", "127.0.0.1"), "port": os.environ.get("PGPORT", "55432"),
            "user": os.environ.get("PGUSER", "sluice"), "password": os.environ.get("PGPASSWORD", "sluice"),
            "dbname": os.environ.get("PGDATABASE", "sluice")}


def psql(db, script=None, args=(), timeout=1800):
    env = dict(os.environ, PGPASSWORD=db["password"])
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", db["host"], "-p", db["port"],
                        "-U", db["user"], "-d", db["dbname"], *args],
                       input=script.encode() if script is not None else None, env=env, capture_output=True,
                       timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"psql failed: {r.stderr.decode()[:500]}")
    return r.stdout.decode()


def row(i):
    return i, f"customer-{i:08d}", i * 0.25, i % 2 == 0


def write_inputs(path_kv, path_csv, count):
    """The topic's lines (key TAB value) and the same rows as CSV for the ceilings."""
    key_head = '{"schema":' + json.dumps(KEY_SCHEMA, separators=(",", ":")) + ',"payload":{"id":'
    value_head = '{"schema":' + json.dumps(VALUE_SCHEMA, separators=(",", ":")) + ',"payload":'
    with open(path_kv, "w") as kv, open(path_csv, "w") as csv:
        for i in range(count):
            i, name, amount, flag = row(i)
            payload = (f'{{"id":{i},"name":"{name}","amount":{amount!r},"flag":{"true" if flag else "false"},'
                       f'"note":"{NOTE}"}}')
            kv.write(f"{key_head}{i}}}}}\t{value_head}{payload}}}\n")
            csv.write(f"{i},{name},{amount!r},{'t' if flag else 'f'},{NOTE}\n")
    return len(payload)


def pg_cpu(run):
    """CPU seconds per PostgreSQL server process so far."""
    total = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        c = run.cpu_s(int(pid))
        if c is not None:
            total[pid] = c
    return total


def pg_cpu_since(run, before):
    """CPU seconds PostgreSQL's processes used since `before` (pg_cpu()); processes that ended in between are not
    counted (the sink's backend lives through a run)."""
    return sum(c - before.get(pid, 0.0) for pid, c in pg_cpu(run).items())


def create_table(db, table, keyed):
    pk = ", PRIMARY KEY (id)" if keyed else ""
    psql(db, f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({COLUMNS}, "
             f"written_at timestamptz NOT NULL DEFAULT clock_timestamp(){pk});")


def finished(db, table, t0_epoch):
    """Seconds from t0 (epoch) to the last row written, and the row count."""
    out = psql(db, f"SELECT count(*), extract(epoch FROM max(written_at)) FROM {table};").strip()
    count, last = out.split("|")
    return int(count), (float(last) - t0_epoch) if last else None


def connector_config(db, topic, table, mode):
    cfg = {
        "connector.class": DEBEZIUM_JDBC, "tasks.max": "1", "topics": topic,
        "connection.url": f"jdbc:postgresql://{db['host']}:{db['port']}/{db['dbname']}",
        "connection.username": db["user"], "connection.password": db["password"],
        "insert.mode": mode, "collection.name.format": table, "schema.evolution": "none",
        "key.converter": JSON, "value.converter": JSON,
        "key.converter.schemas.enable": "true", "value.converter.schemas.enable": "true",
    }
    if mode == "upsert":
        cfg.update({"primary.key.mode": "record_key", "primary.key.fields": "id"})
    else:
        cfg["primary.key.mode"] = "none"
    return cfg


def measure(run, env, w, db, topic, count, mode):
    table = env.uniq(f"jsink_{mode}").replace("-", "_")
    create_table(db, table, keyed=mode == "upsert")
    name = env.uniq(f"jdbc-sink-{mode}")
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
        cpu0, db_cpu0 = run.cpu_s(w.proc.pid), pg_cpu(run)
        t0, t0_epoch = time.monotonic(), time.time()
        run.create_connector(w.base, name, connector_config(db, topic, table, mode))
        state = {}

        def done():
            # count(*) scans the table: rarely, the time comes from `written_at`
            n, _ = finished(db, table, t0_epoch)
            state["n"] = n
            return n >= count
        run.wait_until(f"{count} rows in {table}", done, env.args.timeout, interval=1.0, proc=w.proc)
        cpu, db_cpu = run.cpu_s(w.proc.pid) - cpu0, pg_cpu_since(run, db_cpu0)
        wall = time.monotonic() - t0
    finally:
        stop.set()
        th.join()
    n, elapsed = finished(db, table, t0_epoch)
    status = run.task_status(w.base, name)
    run.delete_connector(w.base, name)
    psql(db, f"DROP TABLE IF EXISTS {table};")
    if n != count:
        raise run.BenchError(f"{table}: {n} rows, expected {count} (status {status})")
    return {"seconds": elapsed, "rows_per_s": count / elapsed, "cpu_s": cpu, "rows_per_cpu_s": count / cpu if cpu else None,
            "db_cpu_s": db_cpu, "peak_rss_mb": max(samples) / 1024 if samples else None, "wall_s_polled": wall}


def ceilings(env, db, csv_path, count):
    out = {}
    table = env.uniq("jsink_copy").replace("-", "_")
    create_table(db, table, keyed=False)
    t0 = time.monotonic()
    psql(db, args=("-c", f"\\copy {table} ({', '.join(c.split()[0] for c in COLUMNS.split(', '))}) "
                         f"FROM '{csv_path}' WITH (FORMAT csv)"))
    el = time.monotonic() - t0
    psql(db, f"DROP TABLE {table};")
    out["psql_copy"] = {"seconds": el, "rows_per_s": count / el}
    table = env.uniq("jsink_bare").replace("-", "_")
    create_table(db, table, keyed=True)
    script_path = csv_path + ".upsert.sql"
    with open(script_path, "w") as f:
        for start in range(0, count, 1000):
            values = ",".join(
                f"({i},'{name}',{amount!r},{'true' if flag else 'false'},'{NOTE}')"
                for i, name, amount, flag in (row(i) for i in range(start, min(start + 1000, count))))
            f.write(f"INSERT INTO {table} (id, name, amount, flag, note) VALUES {values} ON CONFLICT (id) DO UPDATE "
                    "SET name = EXCLUDED.name, amount = EXCLUDED.amount, flag = EXCLUDED.flag, note = EXCLUDED.note;\n")
    t0 = time.monotonic()
    psql(db, args=("-f", script_path))
    el = time.monotonic() - t0
    os.remove(script_path)
    n = int(psql(db, f"SELECT count(*) FROM {table}; DROP TABLE {table};").split()[0])
    if n != count:
        raise RuntimeError(f"bare upsert wrote {n} rows, expected {count}")
    out["bare_upsert_1000"] = {"seconds": el, "rows_per_s": count / el}
    return out


def scenario(run, env):
    db = pg_env()
    try:
        psql(db, "SELECT 1;")
    except (RuntimeError, OSError) as e:
        raise run.BenchError(f"jdbc-sink needs PostgreSQL (deploy/local/postgres up; eval \"$(deploy/local/postgres "
                             f"env)\"): {e}")
    plugin = subprocess.run([os.path.join(run.REPO, "deploy", "compat", "plugins", "debezium-jdbc")],
                            capture_output=True, text=True, check=True).stdout.strip()
    plugins = os.path.join(env.data, "jdbc-sink-plugins")
    os.makedirs(plugins, exist_ok=True)
    if not os.path.exists(os.path.join(plugins, "debezium-jdbc")):
        os.symlink(plugin, os.path.join(plugins, "debezium-jdbc"))
    count = env.args.records
    kv_path = os.path.join(env.data, f"jdbc-sink-{count}.kv")
    csv_path = os.path.join(env.data, f"jdbc-sink-{count}.csv")
    payload = write_inputs(kv_path, csv_path, count)
    topic = env.uniq("jdbc-sink-in")
    run.log(f"jdbc-sink: filling {topic} with {count:,} keyed records ({payload} B payload + schema) (kcat)")
    with open(kv_path, "rb") as f:
        subprocess.run(["kcat", "-P", "-b", env.bootstrap, "-t", topic, "-K", "\t", "-X", "linger.ms=20",
                        "-X", "batch.num.messages=10000"], stdin=f, check=True, timeout=900)
    os.remove(kv_path)
    if env.offsets.end_offset(topic) != count:
        raise run.BenchError(f"filled {topic} with {env.offsets.end_offset(topic)} records, expected {count}")
    out = {"records": count, "payload_bytes": payload}
    try:
        run.log("jdbc-sink: ceilings (psql \\copy; bare 1,000-row upsert)")
        out["ceilings"] = ceilings(env, db, csv_path, count)
        run.log(f"jdbc-sink ceilings: {out['ceilings']}")
        extra = {"plugin.path": plugins}
        for mode in ("insert", "upsert"):
            runs = {run.SLUICE: [], run.CONNECT: []}
            for rep in range(env.args.reps):
                for system in run.order(rep):
                    w = run.Worker(env, system, f"jdbc-sink-{mode}", extra=extra).start()
                    try:
                        w.wait_rest()
                        time.sleep(env.args.settle)
                        r = measure(run, env, w, db, topic, count, mode)
                    finally:
                        w.stop()
                    run.log(f"jdbc-sink {mode} rep {rep + 1} {run.NAMES[system]}: {r['seconds']:.2f}s "
                            f"{r['rows_per_s']:,.0f} rows/s, worker CPU {r['cpu_s']:.1f}s, PostgreSQL CPU "
                            f"{r['db_cpu_s']:.1f}s, peak RSS {r['peak_rss_mb'] or 0:.0f} MB")
                    runs[system].append(r)
            out[mode] = run.per_system(runs, {"rows_per_s": "rows/s", "seconds": "s", "cpu_s": "CPU s",
                                              "rows_per_cpu_s": "rows per CPU s", "db_cpu_s": "CPU s",
                                              "peak_rss_mb": "MB"})
    finally:
        if os.path.exists(csv_path):
            os.remove(csv_path)
    return out
