"""Benchmark scenario `jdbc-source`: Sluice's JDBC source (io.confluent.connect.jdbc.JdbcSourceConnector,
mode=incrementing, JsonConverter with schemas, defaults otherwise: batch.max.rows=100; and again with
batch.max.rows=10000) reading a PostgreSQL table of
1,000,000 rows (~100 B each) into Kafka, in a Sluice standalone worker. Time from POST /connectors until the topic's
end offset reaches the row count; worker CPU and peak RSS.

Confluent's JDBC connector is not on Maven Central (it cannot be downloaded here), so there is no side-by-side run:
the comparison is against the Kafka Connect figure measured on this machine for the closest thing that does run,
Debezium PostgreSQL 3.6.1's initial snapshot of 1M rows (64.6 s, 15.5k rows/s, 2.24 GiB; reference connectors.md
section 0.1).

PostgreSQL: $SLUICE_BENCH_PG (default: deploy/local/postgres's postgres://sluice:sluice@127.0.0.1:55432/sluice).
Imported by deploy/bench/run (registration lines only there).
"""

import os
import statistics
import subprocess
import threading
import time

DEBEZIUM_SNAPSHOT_1M = {"seconds": 64.6, "records_per_s": 15500, "rss_gib": 2.24,
                        "source": "connectors.md 0.1: Debezium PostgreSQL 3.6.1 in Kafka Connect 4.1.2, "
                                  "initial snapshot of 1M rows, this machine, Dec 2026"}


class BenchError(Exception):
    pass


def _psql(url, sql):
    r = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], capture_output=True, text=True,
                       timeout=1800)
    if r.returncode != 0:
        raise BenchError(f"psql: {sql[:200]}: {r.stderr}")
    return r.stdout


def _jdbc_url(url):
    rest = url.split("://", 1)[1]
    cred, hostdb = rest.rsplit("@", 1)
    user, pw = cred.split(":", 1)
    return f"jdbc:postgresql://{hostdb}", user, pw


def scenario_jdbc_source(env, run):
    """`run` is deploy/bench/run's module namespace (Worker, SLUICE, wait_until, rss_kb, cpu_s, ...)."""
    global BenchError
    BenchError = run.BenchError
    count = 1_000_000 if not env.args.smoke else 10_000
    url = os.environ.get("SLUICE_BENCH_PG", "postgres://sluice:sluice@127.0.0.1:55432/sluice")
    jdbc, user, pw = _jdbc_url(url)
    table = env.uniq("bench_src").replace("-", "_")
    run.log(f"jdbc-source: filling {table} with {count:,} rows")
    _psql(url, f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigserial PRIMARY KEY, name text NOT NULL, "
               f"amount numeric(10,2), ts timestamp(6) NOT NULL, payload text)")
    _psql(url, f"INSERT INTO {table} (name, amount, ts, payload) SELECT 'name-' || g, g % 100000 + 0.25, "
               f"'2024-01-01'::timestamp + g * interval '1 ms', repeat('x', 40) FROM generate_series(1, {count}) g")
    _psql(url, f"VACUUM ANALYZE {table}")
    variants = {"defaults": {}, "batch.max.rows=10000": {"batch.max.rows": "10000"}}
    all_runs = {v: [] for v in variants}
    try:
        for rep, (variant, extra) in ((r, v) for r in range(env.args.reps) for v in variants.items()):
            runs = all_runs[variant]
            w = run.Worker(env, run.SLUICE, "jdbc-source").start()
            try:
                w.wait_rest()
                time.sleep(env.args.settle)
                prefix = env.uniq("jdbc-") + "-"
                topic = prefix + table
                name = env.uniq("jdbc-source")
                samples = []
                stop = threading.Event()

                def sampler():
                    while not stop.is_set():
                        r = run.rss_kb(w.proc.pid)
                        if r:
                            samples.append(r)
                        stop.wait(0.2)
                th = threading.Thread(target=sampler, daemon=True)
                th.start()
                cpu0 = run.cpu_s(w.proc.pid)
                t0 = time.monotonic()
                run.create_connector(w.base, name, {
                    "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector", "tasks.max": "1",
                    "connection.url": jdbc, "connection.user": user, "connection.password": pw,
                    "mode": "incrementing", "incrementing.column.name": "id", "table.whitelist": table,
                    "topic.prefix": prefix,
                    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                    "value.converter.schemas.enable": "true",
                    **extra,
                })
                run.wait_until(f"{count} records in {topic}", lambda: env.offsets.end_offset(topic) >= count,
                               env.args.timeout, interval=0.05, proc=w.proc)
                elapsed = time.monotonic() - t0
                cpu = run.cpu_s(w.proc.pid) - cpu0
                stop.set()
                th.join()
                r = {"seconds": elapsed, "records_per_s": count / elapsed, "cpu_s_per_m_records": cpu / count * 1e6,
                     "rss_peak_mib": max(samples) / 1024 if samples else None}
                run.log(f"jdbc-source {variant} rep {rep + 1}: {count:,} rows in {elapsed:.1f}s = {count / elapsed:,.0f} rows/s, "
                        f"CPU {cpu:.1f}s, peak RSS {r['rss_peak_mib']:.0f} MiB")
                runs.append(r)
                run.delete_connector(w.base, name)
                env.kafka_tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", env.bootstrap, "--delete",
                               "--topic", topic, timeout=120)
            finally:
                w.stop()
    finally:
        _psql(url, f"DROP TABLE IF EXISTS {table}")
    out = {"rows": count, "kafka_connect_reference": DEBEZIUM_SNAPSHOT_1M}
    for variant, runs in all_runs.items():
        med = {k: statistics.median([r[k] for r in runs]) for k in runs[0]}
        out["sluice" if variant == "defaults" else f"sluice {variant}"] = {"runs": runs, "median": med}
    return out
