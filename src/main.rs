//! The `scrubd` binary: parses flags, sets up tracing, dispatches to `scrubd::cli`, and turns an
//! error into a message and an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = scrubd::cli::Cli::parse();
    scrubd::cli::init_tracing(&cli);
    match scrubd::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("scrubd: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
