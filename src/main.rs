//! Thin entry point: parse the command line, initialise logging, dispatch, map errors to exit codes
//! (docs/OPERATIONS.md lists them: 64 bad config, 70 a daemon stage failed, 1 anything else).

use std::process::ExitCode;

use clap::Parser;
use sentmon::cli::{Cli, Command, LogFormat};
use sentmon::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` takes its logging settings from its config file ([log]); everything else from flags.
    if !matches!(cli.command, Command::Run(_)) {
        sentmon::logging::init(&cli.log_level, cli.log_format == LogFormat::Json);
    }
    let result = match cli.command {
        Command::Run(args) => commands::run::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::CheckConfig(args) => commands::check_config::run(&args),
        Command::Broker(args) => commands::broker::run(&args),
        Command::Replay(args) => commands::replay::run(&args),
        Command::Train(args) => commands::train::run(&args),
        Command::Pretrain(args) => commands::pretrain::run(&args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Classify(args) => commands::classify::run(&args),
        Command::Split(args) => commands::split::run(&args),
        Command::Models(command) => commands::models::run(&command),
        Command::Retrain(args) => commands::retrain::run(&args),
        Command::Archive(args) => commands::archive::run(&args),
        Command::Backtest(args) => commands::backtest::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line: "failed to X: because Y".
            eprintln!("error: {error:#}");
            if error.downcast_ref::<sentmon::config::ConfigError>().is_some() {
                return ExitCode::from(sentmon::config::EXIT_CODE_BAD_CONFIG);
            }
            if error.downcast_ref::<sentmon::supervise::StageFailure>().is_some() {
                return ExitCode::from(sentmon::supervise::EXIT_CODE_STAGE_FAILED);
            }
            ExitCode::FAILURE
        }
    }
}
