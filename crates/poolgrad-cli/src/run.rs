//! `poolgrad run`: one operator, forward and optionally backward, `.npy` in and out.

use crate::args::PoolArgs;
use crate::npy::{self, Array, Data};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use poolgrad::Operator;
use poolgrad::{indices_to_onnx, Element, Layout, MaxElement, Pooling, Shape, StorageOrder, Tensor};
use std::path::PathBuf;

/// How `--indices` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum IndicesFormat {
    /// Flat row-major index within each (n, c) spatial plane (PyTorch's return_indices).
    #[default]
    Pytorch,
    /// Flat index over the whole (N, C, d1..dk) tensor, row-major (ONNX MaxPool, storage_order=0).
    Onnx,
    /// As onnx, with the spatial part column-major (ONNX storage_order=1).
    OnnxColumnMajor,
}

/// Arguments of `poolgrad run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub pool: PoolArgs,

    /// Input tensor (.npy, float32 or float64).
    #[arg(long, value_name = "X.npy")]
    pub input: PathBuf,

    /// Write the forward result here.
    #[arg(long, value_name = "Y.npy")]
    pub output: Option<PathBuf>,

    /// max: write the int64 argmax indices here (PyTorch format unless --indices-format).
    #[arg(long, value_name = "I.npy")]
    pub indices: Option<PathBuf>,

    /// Format of --indices. [default: pytorch]
    #[arg(long, value_enum, default_value_t = IndicesFormat::Pytorch, hide_default_value = true)]
    pub indices_format: IndicesFormat,

    /// Gradient w.r.t. the output (same shape and dtype as the output).
    #[arg(long, value_name = "GY.npy")]
    pub grad_output: Option<PathBuf>,

    /// Write the gradient w.r.t. the input here (needs --grad-output).
    #[arg(long, value_name = "GX.npy")]
    pub grad_input: Option<PathBuf>,
}

/// Moves a typed buffer in and out of [`Data`].
pub trait NpyType: Sized {
    fn wrap(v: Vec<Self>) -> Data;
    fn unwrap(d: Data) -> Option<Vec<Self>>;
}

macro_rules! npy_type {
    ($t:ty, $variant:ident) => {
        impl NpyType for $t {
            fn wrap(v: Vec<Self>) -> Data {
                Data::$variant(v)
            }
            fn unwrap(d: Data) -> Option<Vec<Self>> {
                match d {
                    Data::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

npy_type!(half::f16, F16);
npy_type!(f32, F32);
npy_type!(f64, F64);
npy_type!(u8, U8);
npy_type!(i8, I8);
npy_type!(i32, I32);
npy_type!(i64, I64);

type Outputs = Vec<(PathBuf, &'static str, Array)>;

pub fn run(args: &RunArgs) -> Result<()> {
    args.pool.validate()?;
    if args.grad_input.is_some() && args.grad_output.is_none() {
        bail!("--grad-input needs --grad-output");
    }
    if args.indices.is_some() && !args.pool.op.is_max() {
        bail!("conflicting flags: --indices applies to the max ops only, not --op {}", args.pool.op.name());
    }
    let named: Vec<(&str, &PathBuf)> =
        [("--output", &args.output), ("--indices", &args.indices), ("--grad-input", &args.grad_input)]
            .into_iter()
            .filter_map(|(f, p)| p.as_ref().map(|p| (f, p)))
            .collect();
    for (i, (fa, pa)) in named.iter().enumerate() {
        if let Some((fb, _)) = named[i + 1..].iter().find(|(_, pb)| pb == pa) {
            bail!("conflicting flags: {fa} and {fb} name the same file {}", pa.display());
        }
    }
    let input = npy::read(&args.input, "--input")?;
    let layout: Layout = args.pool.layout.into();
    let shape = Shape::from_dims(&input.dims, layout).with_context(|| format!("--input {}", args.input.display()))?;
    let op = args.pool.operator(shape.spatial.len())?;
    let outputs = match input.data {
        Data::F16(x) => run_float(args, &op, x, &shape, layout)?,
        Data::F32(x) => run_float(args, &op, x, &shape, layout)?,
        Data::F64(x) => run_float(args, &op, x, &shape, layout)?,
        Data::U8(x) => run_integer(args, &op, x, &shape, layout)?,
        Data::I8(x) => run_integer(args, &op, x, &shape, layout)?,
        Data::I32(x) => run_integer(args, &op, x, &shape, layout)?,
        Data::I64(x) => run_integer(args, &op, x, &shape, layout)?,
    };
    npy::write_all(&outputs)
}

/// The `--indices` output in the requested format.
fn indices_output(
    args: &RunArgs,
    indices: Tensor<i64>,
    input_spatial: &[usize],
) -> Result<Option<(PathBuf, &'static str, Array)>> {
    let Some(path) = &args.indices else { return Ok(None) };
    let indices = match args.indices_format {
        IndicesFormat::Pytorch => indices,
        IndicesFormat::Onnx => indices_to_onnx(&indices.view(), input_spatial, StorageOrder::RowMajor)?,
        IndicesFormat::OnnxColumnMajor => indices_to_onnx(&indices.view(), input_spatial, StorageOrder::ColumnMajor)?,
    };
    Ok(Some((path.clone(), "--indices", Array { dims: indices.dims(), data: Data::I64(indices.into_data()) })))
}

/// Integer inputs: the max ops' forward only.
fn run_integer<T: MaxElement + NpyType>(
    args: &RunArgs,
    op: &Operator,
    x: Vec<T>,
    shape: &Shape,
    layout: Layout,
) -> Result<Outputs> {
    let Operator::Max(pool) = op else {
        bail!(
            "--input {}: dtype {} is supported by the max ops only (--op {} needs a float input)",
            args.input.display(),
            T::NAME,
            args.pool.op.name()
        );
    };
    if let Some(flag) =
        [("--grad-output", &args.grad_output), ("--grad-input", &args.grad_input)].iter().find(|(_, p)| p.is_some())
    {
        bail!("{}: gradients need a floating-point input, but --input is {}", flag.0, T::NAME);
    }
    let x = Tensor::new(x, shape.clone(), layout)?;
    let fwd = pool.forward_with_indices(&x.view())?;
    let mut outputs: Outputs = Vec::new();
    outputs.extend(indices_output(args, fwd.indices, &shape.spatial)?);
    if let Some(path) = &args.output {
        outputs.push((
            path.clone(),
            "--output",
            Array { dims: fwd.output.dims(), data: T::wrap(fwd.output.into_data()) },
        ));
    }
    Ok(outputs)
}

fn run_float<T: Element + NpyType>(
    args: &RunArgs,
    op: &Operator,
    x: Vec<T>,
    shape: &Shape,
    layout: Layout,
) -> Result<Outputs> {
    let x = Tensor::new(x, shape.clone(), layout)?;
    let out_shape = op.output_shape(shape)?;
    // Read and check the grad-output before computing anything.
    let grad_output = match &args.grad_output {
        None => None,
        Some(path) => {
            let g = npy::read(path, "--grad-output")?;
            let want = out_shape.dims(layout);
            if g.dims != want {
                bail!("--grad-output {}: shape {:?} but the output shape is {:?}", path.display(), g.dims, want);
            }
            let dtype = g.data.dtype_name();
            let data = T::unwrap(g.data).with_context(|| {
                format!("--grad-output {}: dtype {dtype} but the input is {}", path.display(), T::NAME)
            })?;
            Some(Tensor::new(data, out_shape.clone(), layout)?)
        }
    };
    let grad_request = grad_output.as_ref().zip(args.grad_input.as_ref());
    let mut outputs: Outputs = Vec::new();
    let (output, grad_input) = match op {
        Operator::Max(pool) => {
            let fwd = pool.forward_with_indices(&x.view())?;
            let gx = match grad_request {
                Some((g, _)) => Some(pool.backward_with_indices(shape, &g.view(), &fwd.indices.view())?),
                None => None,
            };
            outputs.extend(indices_output(args, fwd.indices, &shape.spatial)?);
            (fwd.output, gx)
        }
        Operator::Avg(pool) => {
            let gx = match grad_request {
                Some((g, _)) => Some(pool.backward_from_shape(shape, &g.view())?),
                None => None,
            };
            (pool.forward_values(&x.view())?, gx)
        }
        Operator::Lp(pool) => {
            let gx = match grad_request {
                Some((g, _)) => Some(pool.backward(&x.view(), &g.view())?),
                None => None,
            };
            (pool.forward(&x.view())?, gx)
        }
    };
    if let Some(path) = &args.output {
        outputs.push((path.clone(), "--output", array(output)));
    }
    if let (Some(gx), Some((_, path))) = (grad_input, grad_request) {
        outputs.push((path.clone(), "--grad-input", array(gx)));
    }
    Ok(outputs)
}

fn array<T: NpyType>(t: Tensor<T>) -> Array {
    Array { dims: t.dims(), data: T::wrap(t.into_data()) }
}
