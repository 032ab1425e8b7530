//! The `poolgrad` command line as a library: its argument parsing, `.npy` I/O and
//! subcommands, so that the binary, the fuzz targets and the tests run the same code.
//!
//! ```no_run
//! let code = poolgrad_cli::run_from(["poolgrad", "demo"]);
//! ```

/// `println!` that returns the write's error instead of panicking, so that a closed
/// stdout (`poolgrad demo | head`) ends the command quietly (see [`run_from`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub mod args;
pub mod bench;
pub mod demo;
pub mod explain;
pub mod memory;
pub mod npy;
pub mod run;

use clap::{Parser, Subcommand};
use std::ffi::OsString;

/// Exact, verified pooling — forward and backward — from the command line.
///
/// poolgrad computes max, average, LP, adaptive and global pooling (forward and input
/// gradient) in any number of spatial dims, channels first or last, on float16, float32
/// and float64 inputs (and uint8, int8, int32, int64 for the max ops' forward), with
/// PyTorch's exact semantics (ties, NaN, ceil mode, divisors) and ONNX's where only ONNX
/// defines the case. `explain` draws where every gradient goes.
#[derive(Parser, Debug)]
#[command(name = "poolgrad", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    /// The subcommand.
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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

/// Runs a parsed command line.
pub fn execute(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Run(a) => run::run(a),
        Command::Demo(a) => demo::demo(a),
        Command::Explain(a) => explain::explain(a),
        Command::Bench(a) => bench::bench(a),
    }
}

/// One line for an error: the chain of contexts, outermost first. Control characters
/// (a newline inside a flag's value, say) are escaped, so it stays one line whatever the
/// user typed (found by fuzzing).
///
/// ```
/// let e = anyhow::anyhow!("--stride 1\n2: not an integer");
/// assert_eq!(poolgrad_cli::error_line(&e), "poolgrad: error: --stride 1\\n2: not an integer");
/// ```
pub fn error_line(e: &anyhow::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let text: String = chain
        .join(": ")
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect();
    format!("poolgrad: error: {text}")
}

/// Parses `args` (program name first) and runs the command; returns the process exit
/// code (0, or 2 after printing one error line; clap's own code for usage errors).
pub fn run_from<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match execute(&cli) {
        Ok(()) => 0,
        // The reader went away (`| head`): nothing more to say, as for other Unix tools.
        Err(e) if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(is_broken_pipe)) => 0,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            2
        }
    }
}

fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}
