//! The `support-broker` binary: parse the command line, load config, run.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use support_broker::{
    config::{Settings, Sources},
    startup::Application,
    telemetry,
};

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
            let file = config.or_else(|| {
                let default = PathBuf::from("config/default.toml");
                default.exists().then_some(default)
            });
            let mut settings = Settings::load(&Sources { file, env: true })?;
            if let Some(bind) = bind {
                settings.http.bind = bind;
            }
            if let Some(dir) = data_dir {
                settings.storage.data_dir = dir;
            }
            telemetry::init_logs(&settings.log);
            let app = Application::build(settings).await?;
            println!(
                "listening on {}://{}",
                if app.public_url().starts_with("https") {
                    "https"
                } else {
                    "http"
                },
                app.local_addr()
            );
            app.run_until_stopped().await
        }
    }
}
