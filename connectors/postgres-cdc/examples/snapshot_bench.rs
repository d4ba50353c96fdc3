//! Times the connector's initial snapshot of one table with different `snapshot.max.threads`, at the task (no
//! Kafka): from `start` until the record marked `last` is polled, optionally turning every record into JSON with
//! schemas on the polling side as the agent's converter would.
//!
//! `SLUICE_TEST_PG=postgres://sluice:sluice@127.0.0.1:55432/sluice cargo run --release -p
//! sluice-connector-postgres-cdc --example snapshot_bench -- [rows] [threads,threads...] [reps]`
//! (defaults 200000, 1,4, 1). The table (`id int PRIMARY KEY, v text` of ~100 B rows) is created once and kept
//! (`sl_snapbench_<rows>`) so repeated runs do not refill it; drop it when done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connector_postgres_cdc::task::PostgresCdcTask;
use sluice_converters::converter::{Converter, JsonConverter};
use tokio_postgres::NoTls;

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) of proc(5), counted after the command name: indices 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let url = std::env::var("SLUICE_TEST_PG").expect("SLUICE_TEST_PG=postgres://user:password@host:port/db");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let threads: Vec<usize> =
        args.get(1).map(|a| a.split(',').filter_map(|t| t.parse().ok()).collect()).unwrap_or(vec![1, 4]);
    let reps: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let (db, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    let table = format!("sl_snapbench_{rows}");
    let exists = db
        .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&table])
        .await
        .expect("catalog")
        .get::<_, i64>(0)
        > 0;
    if !exists {
        eprintln!("filling {table} with {rows} rows");
        db.batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v text NOT NULL);
             INSERT INTO {table} SELECT g, repeat('x', 92) FROM generate_series(1, {rows}) g;"
        ))
        .await
        .expect("fill");
        db.batch_execute(&format!("VACUUM ANALYZE {table}")).await.expect("vacuum");
    }
    let host_port = url.rsplit('@').next().unwrap_or("").split('/').next().unwrap_or("");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let user_pw = url.split("://").nth(1).and_then(|r| r.split('@').next()).unwrap_or("");
    let (user, password) = user_pw.split_once(':').unwrap_or((user_pw, ""));
    let dbname = url.rsplit('/').next().unwrap_or("postgres");
    println!("rows\tthreads\tjson\tseconds\trows/s\tcpu_s\tpeak_rss_mb");
    for json in [false, true] {
        for &t in &threads {
            for _ in 0..reps {
                let name = format!("sl_snapbench_run_{}", std::process::id());
                let config: BTreeMap<String, String> = [
                    ("connector.class", "io.debezium.connector.postgresql.PostgresConnector"),
                    ("database.hostname", host),
                    ("database.port", port),
                    ("database.user", user),
                    ("database.password", password),
                    ("database.dbname", dbname),
                    ("plugin.name", "pgoutput"),
                    ("topic.prefix", &name),
                    ("slot.name", &name),
                    ("publication.name", &format!("{name}_pub")),
                    ("publication.autocreate.mode", "filtered"),
                    ("table.include.list", &format!("public\\.{table}")),
                    ("snapshot.max.threads", &t.to_string()),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                let converter = JsonConverter::new(true);
                let mut buf = Vec::with_capacity(4096);
                // Resets the peak RSS (VmHWM) so each run reports its own.
                let _ = std::fs::write("/proc/self/clear_refs", "5");
                let cpu0 = cpu_seconds();
                let started = Instant::now();
                let mut task = PostgresCdcTask::default();
                task.start(SourceTaskContext {
                    shared: Default::default(),
                    connector: name.clone(),
                    task: 0,
                    config,
                    offsets: Arc::default(),
                })
                .await
                .expect("start");
                let mut n = 0u64;
                let deadline = started + Duration::from_secs(1800);
                'poll: while Instant::now() < deadline {
                    for r in task.poll().await.expect("poll") {
                        n += 1;
                        if json {
                            buf.clear();
                            converter.from_connect(&r.topic, r.key_schema.as_deref(), &r.key, &mut buf).expect("key");
                            buf.clear();
                            converter
                                .from_connect(&r.topic, r.value_schema.as_deref(), &r.value, &mut buf)
                                .expect("value");
                        }
                        if r.source_offset["snapshot_completed"] == true {
                            break 'poll;
                        }
                    }
                }
                let secs = started.elapsed().as_secs_f64();
                let cpu = cpu_seconds() - cpu0;
                task.stop().await.expect("stop");
                assert_eq!(n, rows, "every row once");
                println!("{rows}\t{t}\t{json}\t{secs:.2}\t{:.0}\t{cpu:.1}\t{:.0}", rows as f64 / secs, peak_rss_mb());
                tokio::time::sleep(Duration::from_millis(500)).await;
                for _ in 0..20 {
                    let dropped = db
                        .execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                             WHERE slot_name = $1 AND NOT active",
                            &[&name],
                        )
                        .await
                        .unwrap_or(0);
                    if dropped > 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                let _ = db.batch_execute(&format!("DROP PUBLICATION IF EXISTS {name}_pub")).await;
            }
        }
    }
}
