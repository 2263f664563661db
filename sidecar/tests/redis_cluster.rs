//! The same two-host story against a local three-node Redis Cluster: every key of a
//! namespace lives in one slot (hash tag `{ns}`), the scripts run on that slot's node, the
//! doorbell (classic pub/sub) reaches every node, and the client's direct fallback speaks the
//! cluster protocol too.

mod common;
mod redis_util;

use cachekit_client::{Client, ClientOptions, SetOptions};
use common::Site;
use redis_util::*;
use std::time::Duration;

#[test]
fn two_hosts_share_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let (site_a, site_b) = (Site::new("cl-a"), Site::new("cl-b"));
    let flags = ["--redis-cluster", "true"];
    let mut host_a = start_host(&site_a, &urls, &flags);
    let host_b = start_host(&site_b, &urls, &flags);
    let mut a = host_a.client("writer");
    let mut b = host_b.client("reader");

    // Namespaces land on different nodes; each works.
    for ns in ["alpha", "beta", "gamma", "delta"] {
        set(&mut a, ns, "k", b"v1", &["t/1"]);
        let gets = cluster.calls("get");
        assert_eq!(fetch(&mut b, ns, "k").as_deref(), Some(&b"v1"[..]), "{ns}");
        assert_eq!(cluster.calls("get"), gets + 1, "one GET for {ns}");
        assert!(in_table(&b, ns, "k").is_some(), "B filled {ns}/k");
        invalidate(&mut a, ns, &["t"]);
        assert!(
            eventually(PATIENCE, || in_table(&b, ns, "k").is_none()),
            "the invalidation of {ns} never reached B through the cluster"
        );
        assert_eq!(fetch(&mut b, ns, "k"), None);
    }
    let used: usize = cluster
        .nodes()
        .iter()
        .filter(|n| {
            redis::cmd("DBSIZE")
                .query::<u64>(&mut n.conn())
                .is_ok_and(|k| k > 0)
        })
        .count();
    println!("the four namespaces landed on {used} of 3 nodes");
    assert!(used >= 2, "namespaces are spread over the nodes");

    // The client's direct fallback speaks the cluster protocol.
    let app = Client::connect(
        ClientOptions::new()
            .socket(host_a.socket())
            .namespace("alpha")
            .redis_url(&urls)
            .redis_cluster(true)
            .request_timeout(Duration::from_secs(2)),
    )
    .expect("client");
    app.set("c", b"x", &SetOptions::new().tag("u"))
        .expect("set");
    assert!(fetch(&mut b, "alpha", "c").is_some());
    host_a.kill_9();
    app.invalidate(&["u"])
        .expect("direct invalidation through the cluster");
    assert_eq!(app.local_stats().redis_direct_writes, 1);
    assert!(
        eventually(PATIENCE, || in_table(&b, "alpha", "c").is_none()),
        "the client's direct invalidation never reached B"
    );
    assert_eq!(app.get("c").expect("get").map(|v| v.bytes), None);
}
