//! `slipway`: take a tabular model from a CSV to a package you can trust.

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use slipway_learn::LearnError;

/// Slipway: train, evaluate, tune and score tabular models, from one binary.
#[derive(Parser)]
#[command(name = "slipway", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Start with `slipway demo`, then `slipway train --help`.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a CSV, test it on held-out rows and write a package.
    Train(cmd::train::TrainArgs),
    /// Evaluate a package on labelled data.
    Eval(cmd::eval::EvalArgs),
    /// Score a CSV of any size with a package (streaming).
    Predict(cmd::predict::PredictArgs),
    /// Search hyperparameters by k-fold cross-validation and train the winner.
    Tune(cmd::tune::TuneArgs),
    /// Train and evaluate the credit-risk model on the bundled German credit data.
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Predict(args) => cmd::predict::run(args),
        Command::Tune(args) => cmd::tune::run(args),
        Command::Demo(args) => cmd::demo::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Our errors are one complete line each; the chain would repeat the cause.
            eprintln!("error: {err}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Exit codes follow sysexits(3): 2 for a bad command line (as clap), 65 for bad data, 66 for
/// a missing input, 74 for other I/O failures, 1 for anything else.
fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<LearnError>() {
        Some(LearnError::Param(_)) => 2,
        Some(LearnError::Data { .. }) => 65,
        Some(LearnError::Package { dir, .. }) if !dir.exists() => 66,
        Some(LearnError::Package { .. }) | Some(LearnError::Core(_)) => 65,
        Some(LearnError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => 66,
        Some(LearnError::Io { .. }) => 74,
        None => 1,
    }
}
