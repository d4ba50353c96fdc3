//! `sluice-test-forward LISTEN TARGET`: forwards every TCP connection accepted on LISTEN to TARGET, both ways.
//! The network-partition tests run it on both ends of a veth link (there is no socat on the test machines).

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(target)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: sluice-test-forward LISTEN_ADDR TARGET_ADDR");
    };
    let listener = TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("forwarding {listen} -> {target}");
    loop {
        let (mut inbound, peer) = listener.accept().await?;
        let target = target.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&target).await {
                Ok(mut outbound) => {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => eprintln!("{peer}: cannot connect to {target}: {e}"),
            }
        });
    }
}
