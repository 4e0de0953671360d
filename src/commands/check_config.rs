//! `sentmon check-config`: validate a config file and print the effective config, secrets redacted.

use anyhow::Context;

use crate::cli::CheckConfigArgs;
use crate::config::Config;

pub fn run(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(Some(&args.config))?;
    let redacted = config.to_redacted_toml().context("failed to render the effective config")?;
    println!("# effective configuration of {} (valid; secrets redacted)", args.config.display());
    print!("{redacted}");
    Ok(())
}
