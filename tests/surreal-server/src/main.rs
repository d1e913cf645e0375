//! SurrealDB's own server (`surreal start ...`), as its `surreal` binary
//! runs it, with only the in-memory and SurrealKV engines.
//!
//! Why it exists: chirp can keep its queue in a SurrealDB server over
//! `ws://`, and the reliability suite needs a real server on loopback to
//! show what chirp does when that server goes away and comes back.

// An optimised build computes the layout of SurrealDB's deepest async
// functions here, and needs more than the default 128 (the dev build does
// not; SurrealDB's own crates set the same).
#![recursion_limit = "256"]

use std::process::ExitCode;

fn main() -> ExitCode {
    surrealdb_server::init(surrealdb_core::CommunityComposer())
}
