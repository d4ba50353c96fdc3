//! The S3 sink over HTTPS: a TLS-terminating proxy (rustls, in this test) in front of the local S3 server, with a
//! certificate for `localhost` signed by a private CA made here with the `openssl` command. An agent started with
//! `AWS_CA_BUNDLE` (the AWS SDKs' variable for extra CAs) writes Confluent's objects through it, `store.url` given
//! without a scheme (Confluent's rule: https://). Without the CA, the task fails with what to do.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::json;
use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::connector::{Connector, SinkTaskContext};
use sluice_connector_s3::S3SinkConnector;
use sluice_integration_tests::kafka::{create_topic, produce};
use sluice_integration_tests::s3::S3Server;
use sluice_integration_tests::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_sink_over_https_with_a_private_ca() {
    let env = TestEnv::new("s3_sink_tls").await;
    env.finish(run(&env).await);
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().context("running openssl")?;
    ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A private CA (`ca.pem`) and a server certificate for localhost / 127.0.0.1 (`server.pem`, `server.key`).
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Sluice test CA",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    )
}

/// Terminates TLS on a free port and forwards the plain bytes to `target`; returns the port.
async fn tls_proxy(dir: &Path, target: String) -> anyhow::Result<u16> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("server.pem"))?.collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else { return };
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                // A client refusing the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(inbound).await else { return };
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut outbound).await;
                }
            });
        }
    });
    Ok(port)
}

async fn run(env: &TestEnv) -> anyhow::Result<()> {
    let kafka = env.services.kafka.as_str();
    let s3 = S3Server::ensure()?;
    let dir = env.path("tls");
    std::fs::create_dir_all(&dir)?;
    make_certificates(&dir)?;
    let target = s3.endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let port = tls_proxy(&dir, target).await?;
    let bucket = "sluice-s3-sink-tests".to_string();
    let client = s3.bucket(&bucket).await?;

    // In this process AWS_CA_BUNDLE is unset: the private CA is not trusted and the task says what to do.
    let config: ConfigMap = [
        ("connector.class", "io.confluent.connect.s3.S3SinkConnector"),
        ("topics", "t"),
        ("s3.bucket.name", bucket.as_str()),
        ("s3.region", s3.region.as_str()),
        ("store.url", &format!("https://localhost:{port}")),
        ("aws.access.key.id", s3.access_key.as_str()),
        ("aws.secret.access.key", s3.secret_key.as_str()),
        ("sluice.s3.start.timeout.ms", "300"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut task = S3SinkConnector.create_sink_task().context("a sink task")?;
    let err = task
        .start(SinkTaskContext { connector: "s3-tls".into(), task: 0, config })
        .await
        .err()
        .context("an untrusted certificate must fail")?;
    let msg = format!("{err:#}");
    ensure!(msg.contains("TLS") && msg.contains("AWS_CA_BUNDLE") && msg.contains("certificate"), "message: {msg}");
    env.note(format!("untrusted CA: {msg}"));

    // An agent with AWS_CA_BUNDLE writes through the proxy; store.url without a scheme means https://.
    let ca = dir.join("ca.pem").display().to_string();
    let vars = [
        ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
        ("AWS_CA_BUNDLE", ca.as_str()),
    ];
    let cp = ControlPlane::start(env, &env.unique("s3tls"), &env.services.etcd).await?;
    let _agent =
        Agent::start_with_env(env, &[cp.grpc_endpoint()], &env.unique("agent"), kafka, &[], &[], &vars, &[]).await?;
    let topic = env.unique("tls-topic");
    create_topic(kafka, &topic, 1).await?;
    let values: Vec<String> = (0..10).map(|i| format!("tls-{i}")).collect();
    produce(kafka, &topic, &values.iter().map(|v| v.as_bytes()).collect::<Vec<_>>()).await?;
    let config = json!({
        "connector.class": "io.confluent.connect.s3.S3SinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "s3.bucket.name": bucket,
        "s3.region": s3.region,
        "store.url": format!("localhost:{port}"),
        "flush.size": "5",
        "format.class": "io.confluent.connect.s3.format.json.JsonFormat",
        "s3.compression.type": "gzip",
    });
    cp.rest.create_connector("s3-tls", &config).await?;
    let prefix = format!("topics/{topic}/");
    wait_until(Duration::from_secs(60), "two objects written over https", || {
        let (client, prefix) = (client.clone(), prefix.clone());
        async move { Ok((client.list_keys(&prefix).await?.len() >= 2).then_some(())) }
    })
    .await?;
    let mut keys = client.list_keys(&prefix).await?;
    keys.sort();
    ensure!(
        keys == [
            format!("{prefix}partition=0/{topic}+0+0000000000.json.gz"),
            format!("{prefix}partition=0/{topic}+0+0000000005.json.gz"),
        ],
        "keys {keys:?}"
    );
    let raw = client.get_object_bytes(&keys[1]).await?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut text)?;
    ensure!(text == (5..10).map(|i| format!("\"tls-{i}\"\n")).collect::<String>(), "contents {text:?}");
    env.note(format!("{} objects written through https://localhost:{port} (private CA via AWS_CA_BUNDLE)", keys.len()));
    cp.rest.delete("/connectors/s3-tls").await?;
    for key in &keys {
        client.delete_object(key).await?;
    }
    Ok(())
}
