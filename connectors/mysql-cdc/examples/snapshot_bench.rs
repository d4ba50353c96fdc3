//! Times the connector's initial snapshot of one table with different `snapshot.max.threads`, at the task (no
//! Kafka): from `start` until the record marked `last` is polled.
//!
//! `eval "$(deploy/local/mysql env)"; cargo run --release -p sluice-connector-mysql-cdc --example snapshot_bench --
//! [rows] [threads,threads...] [reps]` (defaults 200000, 1,4, 1). The table (`id INT PRIMARY KEY, v VARCHAR(100)`
//! of ~100 B rows) is created once and kept (database `sl_snapbench_<rows>`) so repeated runs do not refill it;
//! drop it when done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{SourceTask, SourceTaskContext};
use sluice_connect_api::record::Value;
use sluice_connector_mysql_cdc::Flavor;
use sluice_connector_mysql_cdc::task::MySqlSourceTask;

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn is_last(r: &sluice_connect_api::record::SourceRecord) -> bool {
    // `source.snapshot` is field 4 of the source struct, the envelope's field 2
    matches!(&r.value, Value::Struct(env) if matches!(env.get(2), Some(Value::Struct(s))
        if matches!(s.get(4), Some(Value::String(m)) if m == "last")))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let threads: Vec<usize> =
        args.get(2).map(|v| v.split(',').filter_map(|t| t.parse().ok()).collect()).unwrap_or_else(|| vec![1, 4]);
    let reps: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1);
    let host = std::env::var("MYSQL_HOST").expect("MYSQL_HOST (eval \"$(deploy/local/mysql env)\")");
    let port = std::env::var("MYSQL_TCP_PORT").unwrap_or_else(|_| "3306".into());
    let user = std::env::var("MYSQL_USER").unwrap_or_else(|_| "root".into());
    let password = std::env::var("MYSQL_PWD").unwrap_or_default();
    let db = format!("sl_snapbench_{rows}");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.clone())
        .tcp_port(port.parse().expect("port"))
        .user(Some(user.clone()))
        .pass(Some(password.clone()))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.expect("connect");
    let have: Option<u64> = c
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
            (&db,),
        )
        .await
        .expect("information_schema");
    if have.is_none() {
        eprintln!("creating {db}.t with {rows} rows");
        c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {db}")).await.expect("create database");
        c.query_drop(format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(100) NOT NULL)"))
            .await
            .expect("table");
        c.query_drop(format!(
            "INSERT INTO {db}.t SELECT seq, RPAD(CONCAT('row-', seq), 96, 'x') FROM {db}.seq_1_to_{rows}"
        ))
        .await
        .expect("fill");
        c.query_drop(format!("ANALYZE TABLE {db}.t")).await.expect("analyze");
    }
    for _ in 0..reps {
        for &n in &threads {
            let config: ConfigMap = [
                ("topic.prefix", "bench"),
                ("database.hostname", host.as_str()),
                ("database.port", port.as_str()),
                ("database.user", user.as_str()),
                ("database.password", password.as_str()),
                ("database.server.id", "7777"),
                ("database.include.list", db.as_str()),
                ("include.schema.changes", "false"),
                ("snapshot.mode", "initial_only"),
                ("snapshot.max.threads", &n.to_string()),
                ("poll.interval.ms", "10"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let mut task = MySqlSourceTask::new(Flavor::MariaDb);
            let (cpu, started) = (cpu_seconds(), Instant::now());
            task.start(SourceTaskContext {
                connector: "bench".into(),
                task: 0,
                config,
                offsets: Arc::default(),
                shared: Default::default(),
            })
            .await
            .expect("start");
            let mut got = 0u64;
            loop {
                let batch = task.poll().await.expect("poll");
                got += batch.len() as u64;
                if batch.iter().any(is_last) {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(3600), "no end");
            }
            let took = started.elapsed();
            task.stop().await.expect("stop");
            println!(
                "threads {n}: {got} records in {:.2} s ({:.0} records/s), task CPU {:.1} s",
                took.as_secs_f64(),
                got as f64 / took.as_secs_f64(),
                cpu_seconds() - cpu
            );
        }
    }
}
