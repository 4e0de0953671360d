//! `sentmon run`: the daemon, configured by a TOML file (plus SENTMON__ environment overrides).

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{self, Observers};
use crate::cli::RunArgs;
use crate::config::{Config, LogFormat};

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = Config::load(Some(&args.config))?;
    crate::logging::init(&config.log.level, config.log.format == LogFormat::Json);
    let runtime = app::runtime()?;
    runtime.block_on(async move {
        let address = config.http.listen_addr().context("invalid http.listen")?;
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen on http.listen = {address} (in use? set another port)"))?;
        tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
        let shutdown = CancellationToken::new();
        app::shutdown_on_signals(shutdown.clone())?;
        app::run(config, listener, shutdown, Observers::default()).await
    })
}
