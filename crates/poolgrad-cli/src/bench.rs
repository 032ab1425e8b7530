//! `poolgrad bench`: times one operator through the public API, as a user calls it.

use crate::args::PoolArgs;
use anyhow::{bail, Context, Result};
use bytemuck::Pod;
use clap::{Args, ValueEnum};
use poolgrad::aligned::AlignedBuffer;
use poolgrad::{Element, Layout, Shape, TensorView};
use poolgrad::{Operator, Pooling};
use std::time::{Duration, Instant};

/// Element type to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DType {
    F32,
    F64,
    F16,
    Bf16,
}

impl DType {
    fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }
}

/// The max ops' saved training state (an extension of the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Argmax {
    /// PyTorch's int64 flat indices (8 bytes per output).
    Indices,
    /// The compact window-local tap number (1 byte per output; windows <= 256 taps).
    Compact,
}

/// Which pass to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pass {
    Forward,
    Backward,
    Both,
}

/// Arguments of `poolgrad bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub pool: PoolArgs,

    /// Logical shape N,C,d1,...,dk (whatever the layout).
    #[arg(long, value_name = "N,C,d1,...")]
    pub shape: String,

    /// Element type. [default: f32]
    #[arg(long, value_enum, default_value_t = DType::F32, hide_default_value = true)]
    pub dtype: DType,

    /// Threads to run on. [default: all cores]
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,

    /// Pass to time: forward (the training forward, indices included for max),
    /// backward, or both, reported separately. [default: both]
    #[arg(long, value_enum, default_value_t = Pass::Both, hide_default_value = true)]
    pub pass: Pass,

    /// Keep repeating each pass for at least this long. [default: 1.0]
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, hide_default_value = true)]
    pub min_time: f64,

    /// One JSON object per line per pass instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Max ops: the argmax state the training forward saves and the backward reads
    /// (extension; JSON lines then carry "argmax": "compact"). [default: indices]
    #[arg(long, value_enum, default_value_t = Argmax::Indices, hide_default_value = true)]
    pub argmax: Argmax,

    /// Time the library's `*_into` variants, writing into output buffers allocated once
    /// and reused by every run, as a training loop does (extension; JSON lines then
    /// carry "outputs": "reused"). Max, average and LP pooling (for LP with p = ±inf, the
    /// magnitudes still go through scratch buffers). These buffers, like the inputs,
    /// start on a 64-byte boundary, as PyTorch's do.
    #[arg(long)]
    pub reuse_outputs: bool,
    /// Vector instruction set to run (extension, for comparing builds): narrower than
    /// this CPU's widest is allowed, wider is clamped. [default: the widest available]
    #[arg(long, value_enum)]
    pub isa: Option<IsaArg>,
}

/// `--isa` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsaArg {
    Portable,
    Avx2,
    Avx512,
}

/// Timings of one pass.
struct Measured {
    pass: &'static str,
    median: f64,
    min: f64,
    runs: usize,
    bytes: u64,
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    let dims: Vec<usize> = args
        .shape
        .split(',')
        .map(|p| p.trim().parse::<usize>().with_context(|| format!("--shape {}: '{p}' is not a size", args.shape)))
        .collect::<Result<_>>()?;
    if dims.len() < 3 {
        bail!("--shape {}: needs N,C and at least one spatial dim", args.shape);
    }
    if !(args.min_time.is_finite() && args.min_time >= 0.0) {
        bail!("--min-time {}: must be a non-negative number of seconds", args.min_time);
    }
    if args.threads == Some(0) {
        bail!("--threads 0: must be >= 1");
    }
    let shape = Shape::new(dims[0], dims[1], &dims[2..]);
    let op = args.pool.operator(shape.spatial.len())?;
    op.output_shape(&shape)?;
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let layout: Layout = args.pool.layout.into();
    let isa = match args.isa {
        Some(IsaArg::Portable) => poolgrad::simd::Isa::Portable,
        Some(IsaArg::Avx2) => poolgrad::simd::Isa::Avx2,
        Some(IsaArg::Avx512) => poolgrad::simd::Isa::Avx512,
        None => poolgrad::simd::detected(),
    };
    let results = pool.install(|| {
        poolgrad::simd::with_isa(isa, || match args.dtype {
            DType::F32 => measure::<f32>(args, &op, &shape, layout),
            DType::F64 => measure::<f64>(args, &op, &shape, layout),
            DType::F16 => measure::<poolgrad::f16>(args, &op, &shape, layout),
            DType::Bf16 => measure::<poolgrad::bf16>(args, &op, &shape, layout),
        })
    })?;
    let mut extra = String::new();
    if args.argmax == Argmax::Compact && matches!(op, Operator::Max(_)) {
        extra.push_str(", \"argmax\": \"compact\"");
    }
    if args.reuse_outputs {
        extra.push_str(", \"outputs\": \"reused\"");
    }
    if !args.json {
        outln!(
            "{:<8} {:<9} {:<22} {:<6} {:<5} {:>7} {:>12} {:>12} {:>6} {:>8}",
            "op",
            "pass",
            "shape",
            "layout",
            "dtype",
            "threads",
            "median",
            "min",
            "runs",
            "GB/s"
        )?;
    }
    for m in results {
        let gbps = m.bytes as f64 / m.median / 1e9;
        if args.json {
            outln!(
                "{{\"op\": \"{}\", \"pass\": \"{}\", \"shape\": {:?}, \"layout\": \"{}\", \"dtype\": \"{}\", \"threads\": {}, \"median_s\": {:e}, \"min_s\": {:e}, \"runs\": {}, \"bytes\": {}, \"gbps\": {:.4}{extra}}}",
                args.pool.op.name(), m.pass, dims, layout.name(), args.dtype.name(), threads, m.median, m.min, m.runs, m.bytes, gbps
            )?;
        } else {
            outln!(
                "{:<8} {:<9} {:<22} {:<6} {:<5} {:>7} {:>10.3}ms {:>10.3}ms {:>6} {:>8.2}",
                args.pool.op.name(),
                m.pass,
                format!("{dims:?}"),
                layout.name(),
                args.dtype.name(),
                threads,
                m.median * 1e3,
                m.min * 1e3,
                m.runs,
                gbps
            )?;
        }
    }
    Ok(())
}

/// Uniform values in [-1, 1) that are never zero, in a buffer aligned as PyTorch's are
/// (an error, not an abort, when they do not fit in memory).
fn random<T: Element + Pod>(len: usize, mut state: u64) -> Result<AlignedBuffer<T>> {
    let mut values = AlignedBuffer::zeroed(len).context("the random input")?;
    for v in values.iter_mut() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let u = ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
        *v = T::from_f64(if u == 0.0 { 0.5 } else { u });
    }
    Ok(values)
}

/// `len` zeros on a 64-byte boundary, as PyTorch allocates (an error, not an abort,
/// when they do not fit in memory).
fn zeros<T: Pod>(len: u64) -> Result<AlignedBuffer<T>> {
    let len = usize::try_from(len).context("an output buffer's size")?;
    AlignedBuffer::zeroed(len).context("an output buffer")
}

/// Runs `f` after a warm-up until `min_time` has passed (and at least 5 times).
fn time(min_time: f64, mut f: impl FnMut() -> Result<()>) -> Result<(f64, f64, usize)> {
    f()?;
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || start.elapsed() < Duration::from_secs_f64(min_time) {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], samples[0], samples.len()))
}

fn measure<T: Element + Pod>(args: &BenchArgs, op: &Operator, shape: &Shape, layout: Layout) -> Result<Vec<Measured>> {
    let out_shape = op.output_shape(shape)?;
    let (x, g) = (random::<T>(shape.numel()?, 1)?, random::<T>(out_shape.numel()?, 2)?);
    let (x, g) = (TensorView::new(&x, shape.clone(), layout)?, TensorView::new(&g, out_shape.clone(), layout)?);
    let elem = std::mem::size_of::<T>() as u64;
    let (n_in, n_out) = (shape.numel()? as u64, out_shape.numel()? as u64);
    let mut results = Vec::new();
    let want = |p: Pass| args.pass == p || args.pass == Pass::Both;
    let reuse = args.reuse_outputs;
    // Buffers for --reuse-outputs, allocated once (the allocating calls ignore them).
    let mut out_buf = zeros::<T>(if reuse { n_out } else { 0 })?;
    let mut grad_buf = zeros::<T>(if reuse { n_in } else { 0 })?;
    let timed = |f: &mut dyn FnMut() -> poolgrad::Result<()>| time(args.min_time, || Ok(f()?));
    match op {
        Operator::Max(pool) if args.argmax == Argmax::Compact => {
            let saved = pool.forward_compact(&x)?;
            if want(Pass::Forward) {
                let mut taps = zeros::<u8>(if reuse { n_out } else { 0 })?;
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.forward_compact_into(&x, &mut out_buf, &mut taps).map(drop),
                    false => pool.forward_compact(&x).map(drop),
                })?;
                results.push(Measured { pass: "forward", median, min, runs, bytes: n_in * elem + n_out * (elem + 1) });
            }
            if want(Pass::Backward) {
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.backward_compact_into(shape, &g, &saved.taps.view(), &mut grad_buf),
                    false => pool.backward_compact(shape, &g, &saved.taps.view()).map(drop),
                })?;
                results.push(Measured { pass: "backward", median, min, runs, bytes: n_out * (elem + 1) + n_in * elem });
            }
        }
        Operator::Max(pool) => {
            let saved = pool.forward_with_indices(&x)?;
            if want(Pass::Forward) {
                let mut indices = zeros::<i64>(if reuse { n_out } else { 0 })?;
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.forward_with_indices_into(&x, &mut out_buf, &mut indices).map(drop),
                    false => pool.forward_with_indices(&x).map(drop),
                })?;
                results.push(Measured { pass: "forward", median, min, runs, bytes: n_in * elem + n_out * (elem + 8) });
            }
            if want(Pass::Backward) {
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.backward_with_indices_into(shape, &g, &saved.indices.view(), &mut grad_buf),
                    false => pool.backward_with_indices(shape, &g, &saved.indices.view()).map(drop),
                })?;
                results.push(Measured { pass: "backward", median, min, runs, bytes: n_out * (elem + 8) + n_in * elem });
            }
        }
        Operator::Lp(pool) => {
            use poolgrad::Pooling;
            if want(Pass::Forward) {
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.forward_into(&x, &mut out_buf).map(drop),
                    false => pool.forward(&x).map(drop),
                })?;
                results.push(Measured { pass: "forward", median, min, runs, bytes: (n_in + n_out) * elem });
            }
            if want(Pass::Backward) {
                // The LP backward reads the input as well as the grad-output.
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.backward_into(&x, &g, &mut grad_buf),
                    false => pool.backward(&x, &g).map(drop),
                })?;
                results.push(Measured { pass: "backward", median, min, runs, bytes: (2 * n_in + n_out) * elem });
            }
        }
        Operator::Avg(pool) => {
            if want(Pass::Forward) {
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.forward_into(&x, &mut out_buf).map(drop),
                    false => pool.forward_values(&x).map(drop),
                })?;
                results.push(Measured { pass: "forward", median, min, runs, bytes: (n_in + n_out) * elem });
            }
            if want(Pass::Backward) {
                let (median, min, runs) = timed(&mut || match reuse {
                    true => pool.backward_into(shape, &g, &mut grad_buf),
                    false => pool.backward_from_shape(shape, &g).map(drop),
                })?;
                results.push(Measured { pass: "backward", median, min, runs, bytes: (n_in + n_out) * elem });
            }
        }
    }
    Ok(results)
}
