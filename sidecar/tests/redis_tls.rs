//! `rediss://`: two hosts talk to Redis over TLS, one verifying the server's certificate
//! (trusted through `SSL_CERT_FILE`, which the system-roots loader honours), the other with
//! `#insecure` (no verification, for self-signed setups).
//!
//! One test in this file on purpose: it sets `SSL_CERT_FILE` for the daemons it starts.

mod common;
mod redis_util;

use common::Site;
use redis_util::*;

const NS: &str = "tls";

#[test]
fn two_hosts_over_tls() {
    let dir = cachekit_testkit::temp_dir("redis-tls");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("a self-signed certificate");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("writing the certificate");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("writing the key");
    let tls_port = free_port();
    let redis = Redis::start_tls(tls_port, &cert_path, &key_path);

    // The daemons inherit it; nothing else in this test binary runs meanwhile.
    std::env::set_var("SSL_CERT_FILE", &cert_path);
    let (site_a, site_b) = (Site::new("tls-a"), Site::new("tls-b"));
    let verified = format!("rediss://127.0.0.1:{tls_port}");
    let insecure = format!("rediss://127.0.0.1:{tls_port}/#insecure");
    let host_a = start_host(&site_a, &verified, &[]);
    let host_b = start_host(&site_b, &insecure, &[]);
    std::env::remove_var("SSL_CERT_FILE");

    let mut a = host_a.client("writer");
    let mut b = host_b.client("reader");
    set(&mut a, NS, "k", b"over tls", &["t"]);
    assert_eq!(a.stat("redis_errors"), 0, "{}", host_a.log());
    assert_eq!(fetch(&mut b, NS, "k").as_deref(), Some(&b"over tls"[..]));
    assert_eq!(b.stat("fills"), 1, "{}", host_b.log());
    invalidate(&mut a, NS, &["t"]);
    assert!(
        eventually(PATIENCE, || in_table(&b, NS, "k").is_none()),
        "the invalidation never reached B over TLS"
    );
    let plain_keys: Vec<String> = redis::cmd("KEYS")
        .arg("ck:*")
        .query(&mut redis.conn())
        .expect("KEYS");
    assert!(
        plain_keys.iter().any(|k| k == "ck:{tls}:v:k"),
        "{plain_keys:?}"
    );
}
