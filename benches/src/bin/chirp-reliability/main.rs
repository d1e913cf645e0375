//! `chirp-reliability`: what chirp survives, measured on loopback.
//!
//! 1. crash: steady load while chirp is killed with SIGKILL at random
//!    moments and restarted on the same store; afterwards every message that
//!    got a `202` must be `sent` or `failed`, none missing, and duplicate
//!    deliveries (counted by idempotency key at the mock) must not exceed
//!    the messages in flight at the kills;
//! 2. provider faults: timeouts, resets, 500s, 429 with `Retry-After`, slow
//!    bodies, malformed JSON, `CHAT_4001`; each must end as the
//!    classification promises, with every attempt recorded;
//! 3. store faults: the store's disk fills up (a small tmpfs), and its file
//!    system turns read-only under the running chirp (ext4 on a loop image,
//!    `errors=remount-ro`, after an error); both need root and are skipped
//!    otherwise. chirp must answer `503` rather than `202`, keep what it
//!    accepted, and recover when the fault clears (for read-only: after the
//!    operator's umount, fsck, mount and restart);
//! 4. schemathesis (from pip, in a virtual environment under the user's
//!    cache) against the running chirp's OpenAPI document with every
//!    check: no `5xx`, no answer outside the schema, schema-valid requests
//!    accepted and schema-violating ones refused (`benches/schemathesis.toml`
//!    names the two operations whose `422`s no schema can state; skipped if
//!    pip cannot install it);
//! 5. the SurrealDB server goes away: chirp on `ws://` under steady load
//!    while the server (built from crates.io on first use) is, in turn,
//!    killed with SIGKILL and started again on the same store, or frozen
//!    with SIGSTOP (its connections stay open, nothing answers) and let go.
//!    chirp must notice (health says the store is unreachable), then answer
//!    `503` at once while the server is gone, take traffic again once it is
//!    back without being restarted, lose nothing it accepted, and store
//!    nothing it said it had not accepted.
//!
//! Prints a table per part and exits non-zero if anything was lost or
//! broke its promise. `--short` is the version CI runs.

mod common;
mod crash;
mod faults;
mod schemathesis;
mod server;
mod store;

/// What every part uses.
mod prelude {
    pub(crate) use std::collections::{HashMap, HashSet};
    pub(crate) use std::path::{Path, PathBuf};
    pub(crate) use std::process::Command;
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
    pub(crate) use std::time::{Duration, Instant};

    pub(crate) use chirp_bench::load::{self, Spec, admin_client};
    pub(crate) use chirp_bench::process::{ChirpProcess, Setup, free_port};
    pub(crate) use chirp_bench::surreal_server::{self, SurrealServer};
    pub(crate) use chirp_harness::mock::faulty::{Fault, Mock, Plan};
    pub(crate) use serde_json::Value;

    pub(crate) use crate::Options;
    pub(crate) use crate::common::*;
}

use prelude::*;

/// chirp-reliability: crash, fault and hostile-input proof
/// (RELIABILITY.md).
#[derive(clap::Parser)]
struct Arguments {
    /// The chirp binary under test.
    #[arg(long, default_value = "target/release/chirp")]
    chirp: PathBuf,
    /// The MyOperator component.
    #[arg(long, default_value = "target/wasm32-wasip2/release/myoperator.wasm")]
    plugin: PathBuf,
    /// EarlyBird's rules component.
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/rules_earlybird.wasm"
    )]
    rules_plugin: PathBuf,
    /// Run only this part.
    #[arg(long, value_parser = ["crash", "faults", "store", "schemathesis", "server"])]
    only: Option<String>,
    /// SIGKILLs under load in part 1 (default 10, or 3 with --short).
    #[arg(long)]
    kills: Option<u32>,
    /// Outages of the SurrealDB server in part 5, kills and freezes in
    /// turn (default 5, or 2 with --short).
    #[arg(long)]
    outages: Option<u32>,
    /// A `surreal` binary for part 5; built from `tests/surreal-server`
    /// when not given.
    #[arg(long)]
    surreal: Option<PathBuf>,
    /// The short version CI runs: fewer kills and outages, 20 schemathesis
    /// examples per operation instead of 100.
    #[arg(long)]
    short: bool,
}

pub(crate) struct Options {
    pub(crate) chirp: PathBuf,
    pub(crate) plugin: PathBuf,
    pub(crate) rules_plugin: PathBuf,
    pub(crate) only: Option<String>,
    pub(crate) kills: u32,
    pub(crate) outages: u32,
    pub(crate) surreal: Option<PathBuf>,
    /// The load during part 1's kills, messages per second.
    pub(crate) rate: f64,
    pub(crate) schemathesis_examples: u32,
}

fn parse_args() -> Options {
    let args = <Arguments as clap::Parser>::parse();
    let options = Options {
        kills: args.kills.unwrap_or(if args.short { 3 } else { 10 }),
        outages: args.outages.unwrap_or(if args.short { 2 } else { 5 }),
        schemathesis_examples: if args.short { 20 } else { 100 },
        rate: 300.0,
        chirp: args.chirp,
        plugin: args.plugin,
        rules_plugin: args.rules_plugin,
        only: args.only,
        surreal: args.surreal,
    };
    for path in [&options.chirp, &options.plugin, &options.rules_plugin] {
        if !path.exists() {
            eprintln!(
                "chirp-reliability: {} does not exist (see RELIABILITY.md)",
                path.display()
            );
            std::process::exit(2);
        }
    }
    options
}

#[tokio::main]
async fn main() {
    let options = parse_args();
    println!(
        "# chirp-reliability: {} kills at {} msg/s, chirp {}",
        options.kills,
        options.rate,
        options.chirp.display()
    );
    let wanted = |part: &str| options.only.as_deref().is_none_or(|only| only == part);
    let mut results = Vec::new();
    if wanted("crash") {
        results.push(("crash", crash::crash(&options).await));
    }
    if wanted("faults") {
        results.push(("provider faults", faults::provider_faults(&options).await));
    }
    if wanted("store") {
        results.push(("store: disk full", store::store_disk_full(&options).await));
        results.push(("store: read-only", store::store_read_only(&options).await));
    }
    if wanted("schemathesis") {
        results.push(("schemathesis", schemathesis::schemathesis(&options).await));
    }
    if wanted("server") {
        results.push((
            "SurrealDB server goes away",
            server::server_goes_away(&options).await,
        ));
    }
    println!("\n## Summary\n");
    for (name, held) in &results {
        println!("- {name}: {}", if *held { "held" } else { "BROKEN" });
    }
    if results.iter().any(|(_, held)| !held) {
        std::process::exit(1);
    }
}
