//! The `scale` binary: parse arguments, run, print errors with hints, map to exit codes.

use std::process::ExitCode;

use clap::Parser;
use scale::cli::{Cli, Reported, run};
use scale::engine::EngineError;

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
            if let Some(hint) = err.chain().find_map(|e| e.downcast_ref::<EngineError>()).and_then(EngineError::hint) {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}
