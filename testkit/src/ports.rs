//! Free loopback ports.

use std::net::TcpListener;

/// A TCP port free on 127.0.0.1 right now: the kernel picks it, and it stays free unless
/// another process binds it before the caller does.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free loopback port: {e}"))
}

/// A free loopback port `p` such that `p + offset` is free too (a Redis Cluster node needs its
/// port and its bus port, `port + 10000`).
pub fn free_port_pair(offset: u16) -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if let Some(q) = p.checked_add(offset) {
            if TcpListener::bind(("127.0.0.1", q)).is_ok() {
                return p;
            }
        }
    }
    panic!("no free loopback port p with p + {offset} free as well, in 100 tries");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable() {
        TcpListener::bind(("127.0.0.1", free_port())).unwrap();
        let p = free_port_pair(10_000);
        TcpListener::bind(("127.0.0.1", p)).unwrap();
        TcpListener::bind(("127.0.0.1", p + 10_000)).unwrap();
    }
}
