//! The `scale` binary: parse arguments, run, print errors with hints, map to exit codes
//! (see `scale::exit`).

use std::process::ExitCode;

use clap::Parser;
use scale::cli::failure::{Failure, usage_failure};
use scale::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return ExitCode::from(usage_failure(&err, scale::exit::args_ask_for_json(std::env::args_os()))),
    };
    let json = cli.global.output == scale::cli::OutputFormat::Json;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            let err = anyhow::Error::new(err).context("cannot start the async runtime");
            return ExitCode::from(Failure::of(&err).finish(json));
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => ExitCode::from(Failure::of(&err).finish(json)),
    }
}
