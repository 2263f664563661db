//! The commit and delete-matching scripts, and the read-modify-write loop, against a real
//! redis-server.

#[cfg(not(all(feature = "sync", feature = "async")))]
compile_error!("these tests need both stores: run them with `--features sync,async` (a workspace build turns both on)");

#[cfg(all(feature = "sync", feature = "async"))]
mod cases;
