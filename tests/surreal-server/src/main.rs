//! SurrealDB's own server (`surreal start ...`), as its `surreal` binary
//! runs it, with only the in-memory and SurrealKV engines.
//!
//! Why it exists: chirp can keep its queue in a SurrealDB server over
//! `ws://`, and the reliability suite needs a real server on loopback to
//! show what chirp does when that server goes away and comes back.

use std::process::ExitCode;

fn main() -> ExitCode {
    surrealdb_server::init(surrealdb_core::CommunityComposer())
}
