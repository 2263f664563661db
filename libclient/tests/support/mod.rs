//! What several integration tests of the client share.

use std::time::Duration;

use cachekit_client::{Client, ClientOptions};
use cachekit_testkit::eventually;

/// A client connected with `opts`, retrying for up to 10 s while the daemon comes up.
pub fn connect_eventually(opts: ClientOptions) -> Client {
    let mut client = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            client = Client::connect(opts.clone()).ok();
            client.is_some()
        }),
        "cachekitd did not come up within 10 s"
    );
    client.unwrap()
}
