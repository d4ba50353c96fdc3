//! The JDBC source (`io.confluent.connect.jdbc.JdbcSourceConnector`) end to end on the real PostgreSQL and MariaDB
//! (`SLUICE_TEST_PG` / `SLUICE_TEST_MYSQL`, from deploy/test or `deploy/local/<db> env`; a test whose variable is
//! unset says so and passes): a control plane and two agents, a table in incrementing mode with JsonConverter
//! (schemas on). Checks the first record against the fixture of Confluent's output
//! (fixtures/jdbc_source/orders_row1.json, see its README for the source), `GET /connectors/{n}/offsets` in
//! Confluent's format, PATCH of a Confluent offset then resume (rows after the patched id are produced again),
//! rows inserted while running, and a kill -9 of the agent running the task mid-stream (the task moves, resumes
//! from its committed offset, no row lost).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use sluice_integration_tests::kafka::{create_topic, read_topic};
use sluice_integration_tests::*;

const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Db {
    Pg,
    MariaDb,
}

struct Sql {
    db: Db,
    url: String,
}

impl Sql {
    fn from_env(db: Db) -> Option<Sql> {
        let var = if db == Db::Pg { "SLUICE_TEST_PG" } else { "SLUICE_TEST_MYSQL" };
        match std::env::var(var) {
            Ok(url) => Some(Sql { db, url }),
            Err(_) => {
                eprintln!("{var} is not set: skipping");
                None
            }
        }
    }

    /// (user, password, host, port, database) of the URL.
    fn parts(&self) -> (String, String, String, String, String) {
        let rest = self.url.split_once("://").map(|x| x.1).unwrap_or("");
        let (cred, hostdb) = rest.rsplit_once('@').unwrap_or(("", rest));
        let (user, pw) = cred.split_once(':').unwrap_or((cred, ""));
        let (hostport, db) = hostdb.split_once('/').unwrap_or((hostdb, ""));
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, ""));
        (user.into(), pw.into(), host.into(), port.into(), db.split('?').next().unwrap_or("").into())
    }

    fn jdbc_url(&self) -> String {
        let (_, _, host, port, db) = self.parts();
        let scheme = if self.db == Db::Pg { "postgresql" } else { "mariadb" };
        format!("jdbc:{scheme}://{host}:{port}/{db}")
    }

    fn exec(&self, sql: &str) -> anyhow::Result<String> {
        let out = match self.db {
            Db::Pg => Command::new("psql").args([&self.url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]).output()?,
            Db::MariaDb => {
                let (user, pw, host, port, db) = self.parts();
                Command::new("mysql")
                    .env("MYSQL_PWD", pw)
                    .args(["-h", &host, "-P", &port, "-u", &user, "-N", "-B", &db, "-e", sql])
                    .output()?
            }
        };
        ensure!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn create_table(&self, t: &str) -> String {
        match self.db {
            Db::Pg => format!(
                "CREATE TABLE {t} (id serial PRIMARY KEY, name text NOT NULL, amount numeric(10,2), ts timestamp(6) NOT NULL)"
            ),
            Db::MariaDb => format!(
                "CREATE TABLE {t} (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL, amount decimal(10,2), ts datetime(6) NOT NULL)"
            ),
        }
    }

    /// Inserts rows `from..to` (ids follow), names `row-<n>`.
    fn insert(&self, t: &str, from: usize, to: usize) -> anyhow::Result<()> {
        let values: Vec<String> =
            (from..to).map(|n| format!("('row-{n}', {n}.50, '2024-01-01 00:00:00.123456')")).collect();
        if values.is_empty() {
            return Ok(());
        }
        self.exec(&format!("INSERT INTO {t} (name, amount, ts) VALUES {}", values.join(",")))?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jdbc_source_postgres() {
    let Some(sql) = Sql::from_env(Db::Pg) else { return };
    let env = TestEnv::new("jdbc_source_postgres").await;
    env.finish(run(&env, &sql).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jdbc_source_mariadb() {
    let Some(sql) = Sql::from_env(Db::MariaDb) else { return };
    let env = TestEnv::new("jdbc_source_mariadb").await;
    env.finish(run(&env, &sql).await);
}

async fn wait_count(kafka: &str, topic: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    let records = wait_until(WAIT, format!("{n} records in {topic}"), || async {
        let r = read_topic(kafka, topic).await?;
        Ok((r.len() >= n).then_some(r))
    })
    .await?;
    records.iter().map(|r| serde_json::from_str(r).with_context(|| format!("not JSON: {r}"))).collect()
}

fn ids(records: &[Value]) -> Vec<i64> {
    records.iter().map(|r| r["payload"]["id"].as_i64().unwrap_or(-1)).collect()
}

async fn run(env: &TestEnv, sql: &Sql) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let table = env.unique("orders").replace('-', "_");
    sql.exec(&format!("DROP TABLE IF EXISTS {table}"))?;
    sql.exec(&sql.create_table(&table))?;
    const N: usize = 300;
    sql.insert(&table, 1, N + 1)?;

    let cp = ControlPlane::start(env, &env.unique("jdbc"), &env.services.etcd).await?;
    let mut agents = [
        Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-a"), kafka).await?,
        Agent::start(env, &[cp.grpc_endpoint()], &env.unique("agent-b"), kafka).await?,
    ];
    let rest = &cp.rest;
    let prefix = "jdbc-";
    let topic = format!("{prefix}{table}");
    create_topic(kafka, &topic, 1).await?;
    let (user, pw, ..) = sql.parts();
    let name = env.unique("jdbc-source");
    let config = json!({
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "tasks.max": "1",
        "connection.url": sql.jdbc_url(),
        "connection.user": user,
        "connection.password": pw,
        "mode": "incrementing",
        "incrementing.column.name": "id",
        "table.whitelist": table,
        "topic.prefix": prefix,
        "poll.interval.ms": "200",
        "batch.max.rows": "50",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    });
    rest.create_connector(&name, &config).await?;
    rest.wait_for_status(&name, "RUNNING", WAIT).await?;
    let records = wait_count(kafka, &topic, N).await?;
    ensure!(ids(&records[..N]) == (1..=N as i64).collect::<Vec<_>>(), "ids: {:?}", ids(&records));

    // Differential: the first record against Confluent's output (fixture).
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jdbc_source/orders_row1.json"),
    )?
    .replace("@TABLE@", &table);
    let expected: Value = serde_json::from_str(&fixture)?;
    ensure!(records[0] == expected, "first record\n  got      {}\n  expected {}", records[0], expected);

    // Offsets as Confluent's: partition {"protocol":"1","table":"<ns>.<table>"}, offset {"incrementing":N}.
    let ns = if sql.db == Db::Pg { "public".to_string() } else { sql.parts().4 };
    let partition = json!({"protocol": "1", "table": format!("{ns}.{table}")});
    let offsets = wait_until(WAIT, "committed offset at the last id", || async {
        let reply = rest.get(&format!("/connectors/{name}/offsets")).await?;
        reply.expect_status(200, "GET offsets")?;
        let offsets = reply.json()?["offsets"].clone();
        Ok((offsets == json!([{"partition": partition, "offset": {"incrementing": N}}])).then_some(offsets))
    })
    .await?;
    env.note(format!("GET offsets: {offsets}"));

    // PATCH an offset written as for Confluent's connector, resume: ids after it come again.
    const K: usize = 250;
    rest.put(&format!("/connectors/{name}/stop"), &json!(null)).await?.expect_status(204, "stop")?;
    rest.wait_for_status_matching(&name, "STOPPED", WAIT, |s| s["connector"]["state"] == "STOPPED").await?;
    let patch = json!({"offsets": [{"partition": partition, "offset": {"incrementing": K}}]});
    rest.patch(&format!("/connectors/{name}/offsets"), &patch).await?.expect_status(200, "PATCH offsets")?;
    rest.put(&format!("/connectors/{name}/resume"), &json!(null)).await?.expect_status(202, "resume")?;
    let records = wait_count(kafka, &topic, N + (N - K)).await?;
    ensure!(
        ids(&records[N..]) == (K as i64 + 1..=N as i64).collect::<Vec<_>>(),
        "after PATCH to {K}: {:?}",
        ids(&records[N..])
    );

    // Rows inserted while running, then kill -9 of the task's agent mid-stream: no row lost.
    let before = records.len();
    const TOTAL: usize = 1300;
    let mut next = N + 1;
    let mut killed = false;
    while next <= TOTAL {
        sql.insert(&table, next, next + 50)?;
        next += 50;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !killed && next > 700 {
            let status = rest.status(&name).await?;
            let Some(worker) = task_worker(&status, 0) else { bail!("no worker: {status}") };
            let Some(victim) = agents.iter().position(|a| a.id == worker) else { bail!("unknown worker {worker}") };
            env.note(format!("kill -9 of {worker} after {} rows", next - 1));
            agents[victim].process.kill9();
            let survivor = agents[1 - victim].id.clone();
            rest.wait_for_status_matching(&name, "task on the survivor", WAIT, |s| {
                task_state(s, 0).as_deref() == Some("RUNNING") && task_worker(s, 0).as_deref() == Some(&survivor)
            })
            .await?;
            killed = true;
        }
    }
    let records = wait_until(WAIT, "every row after the kill", || async {
        let r: Vec<Value> =
            read_topic(kafka, &topic).await?.iter().filter_map(|r| serde_json::from_str(r).ok()).collect();
        let mut seen: Vec<i64> = ids(&r[before..]);
        seen.sort_unstable();
        seen.dedup();
        Ok((seen == (N as i64 + 1..=TOTAL as i64).collect::<Vec<_>>()).then_some(r))
    })
    .await?;
    env.note(format!(
        "after kill -9: {} records for {} new rows ({} duplicates re-read from the committed offset)",
        records.len() - before,
        TOTAL - N,
        records.len() - before - (TOTAL - N)
    ));
    rest.delete(&format!("/connectors/{name}")).await?;
    sql.exec(&format!("DROP TABLE {table}"))?;
    Ok(())
}
