//! `sentmon check-config`: validate a config file and print the effective config, secrets redacted;
//! with `--connect`, also check that every configured topic exists on the brokers.

use std::time::Duration;

use anyhow::Context;

use crate::cli::CheckConfigArgs;
use crate::config::Config;
use crate::ingest::topics;

/// How long `--connect` waits for the brokers' topic list: a healthy cluster answers in
/// milliseconds, and librdkafka's own connection retries fit several times in 10 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(Some(&args.config))?;
    if args.connect {
        let existing = topics::existing_topics(&config.kafka, CONNECT_TIMEOUT)?;
        config.kafka.check_topics_exist(&existing, &config.pipeline.topics())?;
    }
    let redacted = config.to_redacted_toml().context("failed to render the effective config")?;
    let checked = if args.connect && config.kafka.require_existing_topics { "valid, topics exist" } else { "valid" };
    println!("# effective configuration of {} ({checked}; secrets redacted)", args.config.display());
    print!("{redacted}");
    Ok(())
}
