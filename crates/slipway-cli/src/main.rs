//! `slipway`: take a tabular model from a CSV to a package you can trust.

mod cmd;
mod examples;
mod output;

use std::process::ExitCode;

/// mimalloc: the server allocates many small buffers per request (tensors, names, replies),
/// which glibc's allocator served at about a fifth of the server's time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use slipway_learn::LearnError;
use slipway_registry::RegistryError;

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
    #[command(after_help = examples::TRAIN)]
    Train(cmd::train::TrainArgs),
    /// Evaluate a package on labelled data.
    #[command(after_help = examples::EVAL)]
    Eval(cmd::eval::EvalArgs),
    /// Score a CSV of any size with a package (streaming).
    #[command(after_help = examples::PREDICT)]
    Predict(cmd::predict::PredictArgs),
    /// Search hyperparameters by k-fold cross-validation and train the winner.
    #[command(after_help = examples::TUNE)]
    Tune(cmd::tune::TuneArgs),
    /// Train and evaluate the credit-risk model on the bundled German credit data.
    #[command(after_help = examples::DEMO)]
    Demo(cmd::demo::DemoArgs),
    /// Register a package folder as the next version of a model.
    #[command(after_help = examples::REGISTER)]
    Register(cmd::registry::RegisterArgs),
    /// List, show, trace and delete registered models.
    #[command(after_help = examples::MODELS)]
    #[command(subcommand)]
    Models(cmd::registry::ModelsCommand),
    /// Point an alias (production, staging, …) at a version, through gates.
    #[command(after_help = examples::PROMOTE)]
    Promote(cmd::registry::PromoteArgs),
    /// Move an alias back to the version it pointed at before.
    #[command(after_help = examples::ROLLBACK)]
    Rollback(cmd::registry::RollbackArgs),
    /// Write a registered version as a portable tar (digests checked on import).
    #[command(after_help = examples::EXPORT)]
    Export(cmd::registry::ExportArgs),
    /// Register a tar written by `slipway export` (every digest checked first), or an ONNX model
    /// (its signature read from the graph, its load tried first).
    #[command(after_help = examples::IMPORT)]
    Import(cmd::registry::ImportArgs),
    /// Serve models over the Open Inference Protocol v2 (REST and gRPC) and the V1 records API,
    /// with dynamic batching and hot swap by alias.
    #[command(after_help = examples::SERVE)]
    Serve(cmd::serve::ServeArgs),
    /// Check the registry's integrity, or read its audit log.
    #[command(after_help = examples::REGISTRY)]
    #[command(subcommand)]
    Registry(cmd::registry::RegistryCommand),
    /// API keys for `slipway serve`: create, list, revoke, rotate (kept in the registry).
    #[command(subcommand, after_help = examples::KEYS)]
    Keys(cmd::keys::KeysCommand),
    /// Write man pages (slipway.1, slipway-train.1, …) into a folder, e.g. for `man -l` or
    /// /usr/local/share/man/man1.
    #[command(after_help = examples::MAN)]
    Man {
        /// The folder to write them into (created if missing).
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: std::path::PathBuf,
    },
    /// Print a shell completion script, e.g. `slipway completions bash > ~/.local/share/bash-completion/completions/slipway`.
    #[command(after_help = examples::COMPLETIONS)]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    // `slipway models show … | head` closes the pipe early: leave quietly, as Unix tools do,
    // instead of reporting a panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Predict(args) => cmd::predict::run(args),
        Command::Tune(args) => cmd::tune::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Register(args) => cmd::registry::register(args),
        Command::Models(command) => cmd::registry::models(command),
        Command::Promote(args) => cmd::registry::promote(args),
        Command::Rollback(args) => cmd::registry::rollback(args),
        Command::Registry(command) => cmd::registry::registry(command),
        Command::Export(args) => cmd::registry::export(args),
        Command::Import(args) => cmd::registry::import(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Completions { shell } => completions(shell),
        Command::Man { out } => man(&out),
        Command::Keys(command) => cmd::keys::keys(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            // Our errors are one complete line each; the chain would repeat the cause. A
            // pipeline that asked for JSON gets its error as JSON too, on stderr.
            if std::env::args_os().any(|a| a == "--json") {
                eprintln!(
                    "{}",
                    serde_json::json!({ "error": err.to_string(), "exit_code": code })
                );
            } else {
                eprintln!("error: {err}");
            }
            ExitCode::from(code)
        }
    }
}

/// Writes the completion script for `shell` to stdout (built whole first: the generator
/// panics on a write error, and a reader such as `head` may close the pipe early).
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "slipway", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        Ok(()) | Err(_) => Ok(()),
    }
}

/// Writes a man page per command (and subcommand) into `out`, examples included.
fn man(out: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(out).map_err(|e| LearnError::io(out, e))?;
    clap_mangen::generate_to(Cli::command(), out).map_err(|e| LearnError::io(out, e))?;
    println!(
        "wrote man pages into {}; read one with `man -l {}/slipway-train.1`",
        out.display(),
        out.display()
    );
    Ok(())
}

/// Exit codes follow sysexits(3): 2 for a bad command line (as clap), 65 for bad data, 66 for
/// a missing input, 74 for other I/O failures, 3 for a promotion refused by a gate, 1 for
/// anything else.
fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<RegistryError>() {
        return match e {
            RegistryError::Invalid(_) => 2,
            RegistryError::GateFailed(_) => 3,
            RegistryError::NotFound(_) => 66,
            RegistryError::Conflict(_)
            | RegistryError::Corrupt(_)
            | RegistryError::NewerSchema { .. } => 65,
            RegistryError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 66,
            RegistryError::Io { .. } | RegistryError::Database { .. } => 74,
        };
    }
    let learn = match err.downcast_ref::<slipway_runtime::RuntimeError>() {
        Some(slipway_runtime::RuntimeError::Package(e)) => Some(e),
        Some(
            slipway_runtime::RuntimeError::Onnx { .. }
            | slipway_runtime::RuntimeError::Payload { .. },
        ) => return 65,
        None => err.downcast_ref::<LearnError>(),
    };
    match learn {
        Some(LearnError::Param(_)) => 2,
        Some(LearnError::Data { .. }) => 65,
        Some(LearnError::Package { dir, .. }) if !dir.exists() => 66,
        Some(LearnError::Package { .. }) | Some(LearnError::Core(_)) => 65,
        Some(LearnError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => 66,
        Some(LearnError::Io { .. }) => 74,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "slipway", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    /// Every command and subcommand says what it does.
    #[test]
    fn every_command_has_a_description() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "slipway", &mut missing);
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    /// Every command ends its help with examples of itself.
    #[test]
    fn every_command_has_examples() {
        for sub in super::Cli::command().get_subcommands() {
            let name = sub.get_name();
            let after = sub
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                after.starts_with("Examples:") && after.contains(&format!("slipway {name}")),
                "`slipway {name} --help` shows no example of itself: {after:?}"
            );
        }
    }
}
