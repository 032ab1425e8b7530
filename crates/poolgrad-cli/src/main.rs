//! `poolgrad`: exact pooling forward and backward from the command line.

mod args;
mod bench;
mod demo;
mod explain;
mod memory;
mod npy;
mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exact, verified pooling — forward and backward — from the command line.
///
/// poolgrad computes max, average, LP, adaptive and global pooling (forward and input
/// gradient) in any number of spatial dims, channels first or last, on float16, float32
/// and float64 inputs (and uint8, int8, int32, int64 for the max ops' forward), with
/// PyTorch's exact semantics (ties, NaN, ceil mode, divisors) and ONNX's where only ONNX
/// defines the case. `explain` draws where every gradient goes.
#[derive(Parser, Debug)]
#[command(name = "poolgrad", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one operator on .npy files: forward, and backward with --grad-output.
    ///
    /// Example: poolgrad run --op max --kernel 3 --stride 2 --padding 1 --input x.npy
    /// --output y.npy --indices i.npy --grad-output gy.npy --grad-input gx.npy
    Run(run::RunArgs),
    /// Walk through backpropagation through pooling on built-in examples, with pictures.
    Demo(demo::DemoArgs),
    /// Draw where every gradient goes for your configuration (terminal, SVG, PNG).
    ///
    /// Example: poolgrad explain --op max --kernel 3 --stride 2 --padding 1 --shape 1,1,5,5 --png
    Explain(explain::ExplainArgs),
    /// Time one operator (forward and/or backward) and report the median.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(a) => run::run(a),
        Command::Demo(a) => demo::demo(a),
        Command::Explain(a) => explain::explain(a),
        Command::Bench(a) => bench::bench(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("poolgrad: error: {}", chain.join(": "));
            ExitCode::from(2)
        }
    }
}
