//! Ports on the loopback interface.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released for a child process to take.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

/// True when something accepts TCP connections at `addr` (`host:port`, or a URL such as `http://host:port`).
pub fn reachable(addr: &str) -> bool {
    let host_port = addr.trim().trim_start_matches("http://").trim_start_matches("https://");
    let host_port = host_port.split('/').next().unwrap_or_default();
    let host_port = host_port.split(',').next().unwrap_or_default();
    let Ok(addrs) = host_port.to_socket_addrs() else {
        return false;
    };
    addrs.collect::<Vec<SocketAddr>>().iter().any(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
}
