//! `poolgrad`: exact pooling forward and backward from the command line (see the
//! `poolgrad_cli` library for the code).

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(poolgrad_cli::run_from(std::env::args_os()).clamp(0, 255) as u8)
}
