//! The `chirp` binary: reads the command line and the configuration, then
//! hands over to the library: `serve` (the default) runs the engine until
//! SIGINT or SIGTERM; `plugin check` and `plugin send` are the plugin
//! author's tools; `token` mints an API token from the configured secret.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chirp::api::{Role, TokenRequest};
use chirp::config::{Config, LogFormat};
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: under load glibc's malloc and
/// free took about 40% of chirp's CPU (perf, accept benchmark), and its
/// per-thread arenas hold on to freed memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log filter when `CHIRP_LOG` is not set: chirp's own lines at `info`,
/// its dependencies' internals (SurrealKV's start-up lines, hyper, wasmtime)
/// only when they warn.
const DEFAULT_LOG_FILTER: &str = "warn,chirp=info";

/// chirp: a notification engine with sandboxed WebAssembly providers.
///
/// Configuration comes from CHIRP_* environment variables and an optional
/// chirp.toml; plugin settings from CHIRP_PLUGINS__<PLUGIN>__<SETTING>
/// variables (see README.md).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the notification engine (the default).
    Serve,
    /// The plugin author's tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Write a consistent copy of the running chirp's embedded store to
    /// FILE (asks the chirp on CHIRP_LISTEN).
    Backup { file: PathBuf },
    /// Restore a backup into the store CHIRP_DB names, which must be new
    /// (chirp stopped).
    Restore { file: PathBuf },
    /// Import the old system's `notification_settings` or
    /// `notification_templates` from a mongoexport (chirp stopped);
    /// importing again changes nothing.
    Import {
        #[arg(value_enum)]
        what: ImportWhat,
        file: PathBuf,
        /// A TOML file saying which field holds what (`[settings]`,
        /// `[templates]`; see README.md).
        #[arg(long)]
        mapping: Option<PathBuf>,
    },
    /// Mint an API token signed with CHIRP_JWT_SECRET (and the issuer and
    /// audience the configuration requires); prints it on stdout.
    Token {
        #[arg(long, value_enum)]
        role: TokenRole,
        /// Who the token is for (its `sub`, counted by the rate limit).
        #[arg(long)]
        sub: String,
        /// A user's own phone, E.164 (required for --role user).
        #[arg(long)]
        phone: Option<String>,
        /// How long the token lives, e.g. 8h or 30m.
        #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Validate a plugin component offline, exactly as chirp would load it.
    Check { file: PathBuf },
    /// Send one message through a provider plugin.
    Send {
        file: PathBuf,
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        /// Send to this base URL instead of the plugin's own (a test server).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportWhat {
    Settings,
    Templates,
}

#[derive(Clone, Copy, ValueEnum)]
enum TokenRole {
    Admin,
    User,
}

fn main() -> ExitCode {
    chirp::allocator::tune();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Plugin(PluginCommand::Check { file }) => tool(chirp::tools::check(&file)),
        Command::Plugin(PluginCommand::Send {
            file,
            to,
            text,
            url,
        }) => tool(chirp::tools::send(&file, &to, &text, url.as_deref())),
        Command::Backup { file } => admin(|config| async move {
            let size = chirp::admin::backup(&config, &file).await?;
            Ok(format!("{} bytes written to {}\n", size, file.display()))
        }),
        Command::Restore { file } => admin(|config| async move {
            chirp::admin::restore(&config, &file).await?;
            Ok(format!(
                "{} restored into {}\n",
                file.display(),
                config.store.url
            ))
        }),
        Command::Import {
            what,
            file,
            mapping,
        } => admin(|config| async move {
            let kind = match what {
                ImportWhat::Settings => chirp::admin::ImportKind::Settings,
                ImportWhat::Templates => chirp::admin::ImportKind::Templates,
            };
            chirp::admin::import(&config, kind, &file, mapping.as_deref()).await
        }),
        Command::Token {
            role,
            sub,
            phone,
            ttl,
        } => token(TokenRequest {
            role: match role {
                TokenRole::Admin => Role::Admin,
                TokenRole::User => Role::User,
            },
            subject: sub,
            phone,
            ttl,
        }),
    }
}

fn configuration() -> Result<Config, ExitCode> {
    Config::from_process_env().map_err(|e| {
        eprintln!("chirp: configuration error: {e}");
        ExitCode::from(2)
    })
}

fn token(request: TokenRequest) -> ExitCode {
    let config = match configuration() {
        Ok(config) => config,
        Err(code) => return code,
    };
    match chirp::api::mint_token(&config.auth, &request) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chirp: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let config = match configuration() {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log_format);
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let chirp = match chirp::start(config).await {
            Ok(chirp) => chirp,
            Err(e) => {
                eprintln!("chirp: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = shutdown_signal();
        match chirp.local_addr() {
            // Printed on stdout so scripts and tests can find the port.
            Ok(addr) => println!("chirp listening on http://{addr}"),
            Err(e) => eprintln!("chirp: {e}"),
        }
        match chirp.serve(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chirp: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The async runtime, or `None` (said on stderr) if it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| eprintln!("chirp: cannot start the async runtime: {e}"))
        .ok()
}

/// Runs a command's work to completion and prints its report.
fn report<E: std::fmt::Display>(
    work: impl std::future::Future<Output = Result<String, E>>,
) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
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

/// Runs an operator's command on the configuration and prints its report.
fn admin<F: std::future::Future<Output = Result<String, chirp::admin::AdminError>>>(
    work: impl FnOnce(Config) -> F,
) -> ExitCode {
    let config = match configuration() {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log_format);
    report(work(config))
}

/// Runs a plugin tool to completion and prints its report.
fn tool(
    work: impl std::future::Future<Output = Result<String, chirp::tools::ToolError>>,
) -> ExitCode {
    init_logging(LogFormat::Text);
    report(work)
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("CHIRP_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are
/// installed when this is called, not when the future is first polled: a
/// SIGTERM that comes right after chirp says it listens must stop it
/// gracefully, not kill it (it did, under load, before).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            // Without handlers, the default actions stop chirp.
            _ => std::future::pending().await,
        }
    }
}
