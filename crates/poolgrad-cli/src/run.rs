//! `poolgrad run`: one operator, forward and optionally backward, `.npy` in and out.

use crate::args::{Operator, PoolArgs};
use crate::npy::{self, Array, Data};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use poolgrad::{indices_to_onnx, Element, Layout, Shape, StorageOrder, Tensor};
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
pub trait NpyElement: Element {
    fn wrap(v: Vec<Self>) -> Data;
    fn unwrap(d: Data) -> Option<Vec<Self>>;
}

impl NpyElement for f32 {
    fn wrap(v: Vec<Self>) -> Data {
        Data::F32(v)
    }
    fn unwrap(d: Data) -> Option<Vec<Self>> {
        match d {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl NpyElement for f64 {
    fn wrap(v: Vec<Self>) -> Data {
        Data::F64(v)
    }
    fn unwrap(d: Data) -> Option<Vec<Self>> {
        match d {
            Data::F64(v) => Some(v),
            _ => None,
        }
    }
}

type Outputs = Vec<(PathBuf, &'static str, Array)>;

pub fn run(args: &RunArgs) -> Result<()> {
    args.pool.validate()?;
    if args.grad_input.is_some() && args.grad_output.is_none() {
        bail!("--grad-input needs --grad-output");
    }
    if args.indices.is_some() && !matches!(args.pool.op, crate::args::Op::Max) {
        bail!("conflicting flags: --indices applies to the max ops only, not --op {}", args.pool.op.name());
    }
    let named: Vec<(&str, &PathBuf)> = [("--output", &args.output), ("--indices", &args.indices), ("--grad-input", &args.grad_input)]
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
        Data::F32(x) => run_typed::<f32>(args, &op, x, &shape, layout)?,
        Data::F64(x) => run_typed::<f64>(args, &op, x, &shape, layout)?,
        Data::I64(_) => bail!(
            "--input {}: dtype int64 is not supported yet (integer inputs are planned for max); use float32 or float64",
            args.input.display()
        ),
    };
    npy::write_all(&outputs)
}

fn run_typed<T: NpyElement>(args: &RunArgs, op: &Operator, x: Vec<T>, shape: &Shape, layout: Layout) -> Result<Outputs> {
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
    let mut outputs: Outputs = Vec::new();
    let dims = out_shape.dims(layout);
    match op {
        Operator::Max(pool) => {
            let fwd = pool.forward_with_indices(&x.view())?;
            if let (Some(g), Some(path)) = (&grad_output, &args.grad_input) {
                let gx = pool.backward_with_indices(shape, &g.view(), &fwd.indices.view())?;
                outputs.push((path.clone(), "--grad-input", array(gx)));
            }
            if let Some(path) = &args.indices {
                let indices = match args.indices_format {
                    IndicesFormat::Pytorch => fwd.indices.clone(),
                    IndicesFormat::Onnx => indices_to_onnx(&fwd.indices.view(), &shape.spatial, StorageOrder::RowMajor)?,
                    IndicesFormat::OnnxColumnMajor => {
                        indices_to_onnx(&fwd.indices.view(), &shape.spatial, StorageOrder::ColumnMajor)?
                    }
                };
                outputs.push((path.clone(), "--indices", Array { dims: dims.clone(), data: Data::I64(indices.into_data()) }));
            }
            if let Some(path) = &args.output {
                outputs.push((path.clone(), "--output", array(fwd.output)));
            }
        }
        Operator::Avg(pool) => {
            if let Some(path) = &args.output {
                outputs.push((path.clone(), "--output", array(pool.forward_values(&x.view())?)));
            }
            if let (Some(g), Some(path)) = (&grad_output, &args.grad_input) {
                let gx = pool.backward_from_shape(shape, &g.view())?;
                outputs.push((path.clone(), "--grad-input", array(gx)));
            }
        }
    }
    Ok(outputs)
}

fn array<T: NpyElement>(t: Tensor<T>) -> Array {
    Array { dims: t.dims(), data: T::wrap(t.into_data()) }
}
