//! The `chirp` binary: reads the configuration, starts chirp and serves
//! until SIGINT or SIGTERM. All the work is in the library.

use std::process::ExitCode;

use chirp::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: under load glibc's malloc and
/// free took about 40% of chirp's CPU (perf, accept benchmark), and its
/// per-thread arenas hold on to freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  chirp [serve]                      run the notification engine
  chirp plugin check FILE.wasm       validate a plugin component offline
  chirp plugin send FILE.wasm --to PHONE --text TEXT [--url BASE_URL]
                                     send one message through a provider plugin

Configuration comes from CHIRP_* environment variables and an optional
chirp.toml; plugin settings from CHIRP_PLUGINS__<PLUGIN>__<SETTING> variables
(see README.md).";

fn main() -> ExitCode {
    chirp::allocator::tune();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve(),
        ["plugin", "check", file] => tool(chirp::tools::check(std::path::Path::new(file))),
        ["plugin", "send", file, rest @ ..] => match send_flags(rest) {
            Some((to, text, url)) => tool(chirp::tools::send(
                std::path::Path::new(file),
                to,
                text,
                url,
            )),
            None => {
                eprintln!("{USAGE}");
                ExitCode::from(2)
            }
        },
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let config = match Config::from_process_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chirp: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chirp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let chirp = match chirp::start(config).await {
            Ok(chirp) => chirp,
            Err(e) => {
                eprintln!("chirp: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        match chirp.local_addr() {
            // Printed on stdout so scripts and tests can find the port.
            Ok(addr) => println!("chirp listening on http://{addr}"),
            Err(e) => eprintln!("chirp: {e}"),
        }
        match chirp.serve(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chirp: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `--to PHONE --text TEXT [--url URL]`, in any order.
fn send_flags<'a>(args: &[&'a str]) -> Option<(&'a str, &'a str, Option<&'a str>)> {
    let (mut to, mut text, mut url) = (None, None, None);
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = *rest.next()?;
        match *flag {
            "--to" => to = Some(value),
            "--text" => text = Some(value),
            "--url" => url = Some(value),
            _ => return None,
        }
    }
    Some((to?, text?, url))
}

/// Runs a plugin tool to completion and prints its report.
fn tool(
    work: impl std::future::Future<Output = Result<String, chirp::tools::ToolError>>,
) -> ExitCode {
    init_logging(LogFormat::Text);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chirp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chirp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("CHIRP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
