//! The `support-broker` binary: parse the command line, load config, run.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use support_broker::{
    agent::{self, AgentOptions, Enrollment},
    config::{Settings, Sources},
    domain::device::Platform,
    operator::{self, OperatorCommand},
    startup::Application,
    telemetry,
};

/// mimalloc: fewer cycles per small allocation than glibc malloc on the relay path, measured
/// in benches/load.rs (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "support-broker",
    version,
    about = "Real-time support session broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve {
        /// A TOML file layered over the built-in defaults (config/default.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free one).
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Directory of the embedded database and the outbox.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Operator commands on the machine, working on the database directly (the broker may
    /// run meanwhile): a way back in for an operator locked out of the console.
    Admin {
        /// A TOML file layered over the built-in defaults (config/default.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory of the embedded database.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Copy an installation from SQLite into a new, empty PostgreSQL database: every table,
    /// its row count checked, in one transaction (stop the broker first).
    Migrate {
        /// `sqlite:PATH`: the data dir (its broker.db) or the database file.
        #[arg(long)]
        from: String,
        /// `postgres://user[:password]@host[:port]/database`; must hold no rows.
        #[arg(long)]
        to: String,
    },
    /// Run the reference device agent: enroll (once), then serve commands and sessions.
    Agent {
        /// The broker's base URL, such as http://127.0.0.1:8080.
        #[arg(long)]
        server: String,
        /// Enroll with this code (again, after a wipe); without it the saved identity is used.
        #[arg(long)]
        enroll: Option<String>,
        /// The device's serial number (needed with --enroll).
        #[arg(long)]
        serial: Option<String>,
        /// ios, android, windows or macos (needed with --enroll).
        #[arg(long, value_parser = parse_platform)]
        platform: Option<Platform>,
        #[arg(long, default_value = "Reference agent")]
        model: String,
        /// The device's name (the serial when not given).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "1.0")]
        os_version: String,
        /// Where the device id and secret are kept between runs.
        #[arg(long, default_value = "agent-identity.json")]
        identity: PathBuf,
        /// The position that locate answers and telemetry reports.
        #[arg(long, default_value_t = 52.52, allow_negative_numbers = true)]
        lat: f64,
        #[arg(long, default_value_t = 13.405, allow_negative_numbers = true)]
        lon: f64,
        /// Battery level reported, in percent.
        #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
        battery: u8,
        /// Seconds between telemetry reports.
        #[arg(long, default_value_t = 60)]
        telemetry_secs: u64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print a set-password link for a user (username or email); earlier links end.
    ResetPassword { user: String },
    /// Lift a user's lock of the code step (after too many wrong codes).
    Unlock { user: String },
    /// List every account.
    ListAccounts,
    /// Create a customer or partner account with its first admin; prints the admin's link.
    CreateAccount {
        #[arg(long)]
        name: String,
        /// customer or partner.
        #[arg(long, default_value = "customer")]
        kind: String,
        #[arg(long)]
        admin_username: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long, default_value = "Admin")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
    },
}

impl From<AdminCommand> for OperatorCommand {
    fn from(c: AdminCommand) -> Self {
        match c {
            AdminCommand::ResetPassword { user } => Self::ResetPassword { user },
            AdminCommand::Unlock { user } => Self::Unlock { user },
            AdminCommand::ListAccounts => Self::ListAccounts,
            AdminCommand::CreateAccount {
                name,
                kind,
                admin_username,
                admin_email,
                first_name,
                last_name,
            } => Self::CreateAccount {
                name,
                kind,
                admin_username,
                admin_email,
                first_name,
                last_name,
            },
        }
    }
}

fn parse_platform(value: &str) -> Result<Platform, String> {
    Platform::parse(value).ok_or_else(|| "one of ios, android, windows, macos".to_string())
}

/// The built-in defaults, then `--config` (or `config/default.toml` in the working directory),
/// then `BROKER_*` variables, then `--data-dir`.
fn load_settings(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<Settings> {
    let file = config.or_else(|| {
        let default = PathBuf::from("config/default.toml");
        default.exists().then_some(default)
    });
    let mut settings = Settings::load(&Sources { file, env: true })?;
    if let Some(dir) = data_dir {
        settings.storage.data_dir = dir;
    }
    Ok(settings)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            bind,
            data_dir,
        } => {
            let mut settings = load_settings(config, data_dir)?;
            if let Some(bind) = bind {
                settings.http.bind = bind;
            }
            telemetry::init_logs(&settings.log);
            let app = Application::build(settings).await?;
            println!(
                "listening on {}://{}",
                // What is bound and served, whatever http.public_url says.
                if app.serves_tls() { "https" } else { "http" },
                app.local_addr()
            );
            app.run_until_stopped().await
        }
        Command::Admin {
            config,
            data_dir,
            command,
        } => {
            let settings = load_settings(config, data_dir)?;
            let out = operator::run(&settings, command.into()).await?;
            println!("{out}");
            Ok(())
        }
        Command::Migrate { from, to } => {
            let Some(source) = from.strip_prefix("sqlite:") else {
                anyhow::bail!("--from: sqlite:PATH (the data dir or its broker.db)");
            };
            if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
                anyhow::bail!("--to: postgres://user@host/database");
            }
            let copied = support_broker::store::migrate::sqlite_to_postgres(
                std::path::Path::new(source),
                &to,
                |done| println!("{:<24} {:>10} rows", done.table, done.rows),
            )
            .await?;
            let rows: i64 = copied.iter().map(|c| c.rows).sum();
            println!(
                "copied {} tables, {rows} rows; counts checked; set database.url to the target and \
                 keep the data dir (secret.key, outbox, recordings)",
                copied.len()
            );
            Ok(())
        }
        Command::Agent {
            server,
            enroll,
            serial,
            platform,
            model,
            name,
            os_version,
            identity,
            lat,
            lon,
            battery,
            telemetry_secs,
        } => {
            telemetry::init_logs(&support_broker::config::LogSettings {
                format: support_broker::config::LogFormat::Human,
                filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            });
            let enroll = match enroll {
                Some(code) => {
                    let (Some(serial), Some(platform)) = (serial, platform) else {
                        anyhow::bail!("--enroll needs --serial and --platform");
                    };
                    Some(Enrollment {
                        code,
                        name: name.unwrap_or_else(|| serial.clone()),
                        serial,
                        platform,
                        model,
                        os_version,
                    })
                }
                None => None,
            };
            let opts = AgentOptions {
                server,
                identity_file: identity,
                enroll,
                position: (lat, lon),
                battery,
                telemetry_every: std::time::Duration::from_secs(telemetry_secs.max(1)),
                max_backoff: std::time::Duration::from_secs(30),
            };
            let stop = tokio_util::sync::CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                on_signal.cancel();
            });
            let exit = agent::run(opts, Default::default(), stop).await?;
            println!("agent stopped: {exit:?}");
            Ok(())
        }
    }
}
