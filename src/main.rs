//! The `scale` binary: parse arguments, run, print errors with hints, map to exit codes.

use std::process::ExitCode;

use clap::Parser;
use scale::cli::{Cli, Reported, run};
use scale::engine::EngineError;
use scale::ops::failover::FailoverError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) if err.is::<Reported>() => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            let hint = err.chain().find_map(|e| match e.downcast_ref::<EngineError>() {
                Some(engine) => Some(engine.hint()),
                None => e.downcast_ref::<FailoverError>().map(FailoverError::hint),
            });
            if let Some(hint) = hint.flatten() {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}
