//! `set_i64_if` against the real `cachekitd`: add, replace and cas of an integer store a
//! counter (flagged integer), so `incr` adds to it and every reader sees an integer.

mod support;

use std::time::Duration;

use cachekit_client::{Client, ClientOptions, IncrOptions, IntegerCondition, SetOptions};
use cachekit_testkit::{watchdog, Daemon};

fn connect(socket: &std::path::Path, ns: &str) -> Client {
    let opts = ClientOptions::new().socket(socket).namespace(ns);
    support::connect_eventually(opts)
}

#[test]
fn conditional_integer_writes_store_counters() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("atomic-i64", &["--memory", "16MiB"]);
        let c = connect(daemon.socket(), "i64");
        let none = SetOptions::new();
        use IntegerCondition::*;

        assert!(c.set_i64_if("n", 0, Absent, &none).unwrap());
        assert!(!c.set_i64_if("n", 5, Absent, &none).unwrap());
        let v = c.get("n").unwrap().unwrap();
        assert!(v.integer);
        assert_eq!(v.as_i64(), Some(0));
        assert_eq!(c.incr("n", 1, &IncrOptions::new()).unwrap(), Some(1));

        assert!(!c.set_i64_if("missing", 1, Present, &none).unwrap());
        assert!(c.get("missing").unwrap().is_none());
        assert!(c.set_i64_if("n", -7, Present, &none).unwrap());
        let v = c.get("n").unwrap().unwrap();
        assert_eq!((v.as_i64(), v.integer), (Some(-7), true));

        assert!(!c
            .set_i64_if("n", 9, Version(v.version + 1000), &none)
            .unwrap());
        assert!(c.set_i64_if("n", 9, Version(v.version), &none).unwrap());
        assert_eq!(c.incr("n", 1, &IncrOptions::new()).unwrap(), Some(10));
    })
}
