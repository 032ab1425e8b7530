//! # poolgrad-py
//!
//! The native half of the `poolgrad` Python package (`poolgrad._native`): it turns
//! Python's keywords into the library's one operator description
//! ([`poolgrad::Operator`], [`poolgrad::FractionalMaxPool`], [`poolgrad::MaxUnpool`]),
//! reads NumPy arrays without a copy where their memory allows, runs the library with
//! the GIL released on a pool of threads the caller sizes, and hands the results back
//! as NumPy arrays. Names, defaults and the PyTorch drop-in live in the Python half
//! (`python/poolgrad/`); nothing here computes pooling itself.

mod arrays;

use arrays::{array_out, float_kind, read, FloatKind, Wire};
use poolgrad::{
    AvgPool, Element, FractionalMaxPool, Layout, LpFormula, LpPool, MaxPool, MaxUnpool, Operator, Padding, PoolError,
    PoolGeometry, Pooling, Shape, Tensor, TensorView,
};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

/// A library error as the Python exception its kind calls for.
fn py_err(e: PoolError) -> PyErr {
    match e {
        PoolError::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
        PoolError::Internal { .. } => PyRuntimeError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn layout_of(name: &str) -> PyResult<Layout> {
    match name {
        "ncx" => Ok(Layout::ChannelsFirst),
        "nxc" => Ok(Layout::ChannelsLast),
        other => Err(PyValueError::new_err(format!("layout must be 'ncx' or 'nxc', got '{other}'"))),
    }
}

/// The pool of threads every computation runs on: `None` until `set_num_threads`.
static THREADS: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);

/// Runs `work` without the GIL, on the caller-sized pool when there is one.
fn compute<R: Send>(py: Python<'_>, work: impl FnOnce() -> R + Send) -> R {
    let pool = THREADS.lock().map(|p| p.clone()).unwrap_or(None);
    py.detach(move || match pool {
        Some(pool) => pool.install(work),
        None => work(),
    })
}

/// Sets how many threads poolgrad's kernels use (results are the same for any number).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(PyValueError::new_err("set_num_threads: n must be >= 1"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| PyValueError::new_err(format!("set_num_threads({n}): {e}")))?;
    *THREADS.lock().map_err(|_| PyValueError::new_err("thread pool lock poisoned"))? = Some(Arc::new(pool));
    Ok(())
}

/// How many threads poolgrad's kernels use.
#[pyfunction]
fn get_num_threads() -> usize {
    match THREADS.lock().ok().and_then(|p| p.clone()) {
        Some(pool) => pool.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

/// A view of borrowed data with a logical shape read off the array's dims.
fn view<'a, T>(data: &'a [T], dims: &[usize], layout: Layout) -> Result<TensorView<'a, T>, PoolError> {
    TensorView::new(data, Shape::from_dims(dims, layout)?, layout)
}

fn shape_of(dims: &[usize], layout: Layout) -> PyResult<Shape> {
    Shape::from_dims(dims, layout).map_err(py_err)
}

/// Checks that every array of a call has the first one's dtype.
fn same_kind(first: FloatKind, others: &[(&str, &Bound<'_, PyAny>)], bf16: bool) -> PyResult<()> {
    for (name, a) in others {
        let kind = float_kind(a, bf16)?;
        if kind != first {
            return Err(PyTypeError::new_err(format!("{name} is {} but the input is {}", kind.name(), first.name())));
        }
    }
    Ok(())
}

/// Calls `$f::<Wire, Element>(...)` for the float kind of `$x`.
macro_rules! by_float {
    ($kind:expr, $f:ident ( $($arg:expr),* )) => {
        match $kind {
            FloatKind::F16 => $f::<half::f16, half::f16>($($arg),*),
            FloatKind::Bf16 => $f::<u16, half::bf16>($($arg),*),
            FloatKind::F32 => $f::<f32, f32>($($arg),*),
            FloatKind::F64 => $f::<f64, f64>($($arg),*),
        }
    };
}

/// One pooling operator (max, average or LP over regular, adaptive or global windows),
/// built from PyTorch's and ONNX's parameter names. The Python functions build these;
/// see `poolgrad.max_pool` and friends for the documented front door.
#[pyclass(frozen, module = "poolgrad._native", name = "Operator")]
struct PyOperator {
    op: Operator,
}

fn padding_of(padding: Option<Vec<usize>>, pads: Option<Vec<usize>>, auto_pad: Option<&str>) -> PyResult<Padding> {
    let given = [padding.is_some(), pads.is_some(), auto_pad.is_some_and(|m| m != "NOTSET")];
    if given.iter().filter(|&&g| g).count() > 1 {
        return Err(PyValueError::new_err("give at most one of padding, pads and auto_pad"));
    }
    if let Some(mode) = auto_pad {
        return match mode {
            "NOTSET" => Ok(Padding::None),
            "SAME_UPPER" => Ok(Padding::SameUpper),
            "SAME_LOWER" => Ok(Padding::SameLower),
            "VALID" => Ok(Padding::Valid),
            other => Err(PyValueError::new_err(format!(
                "auto_pad must be 'NOTSET', 'SAME_UPPER', 'SAME_LOWER' or 'VALID', got '{other}'"
            ))),
        };
    }
    if let Some(p) = pads {
        // ONNX: all begins, then all ends; one number pads every side.
        return match p.len() {
            1 => Ok(Padding::Explicit { begin: p.clone(), end: p }),
            n if n % 2 == 0 => Ok(Padding::Explicit { begin: p[..n / 2].to_vec(), end: p[n / 2..].to_vec() }),
            n => Err(PyValueError::new_err(format!(
                "pads has {n} values: give the begins then the ends (2 per spatial dim), or 1"
            ))),
        };
    }
    Ok(padding.map(Padding::Symmetric).unwrap_or_default())
}

#[pymethods]
impl PyOperator {
    #[new]
    #[pyo3(signature = (kind, kernel_size=None, stride=None, padding=None, pads=None, auto_pad=None, dilation=None,
        ceil_mode=false, count_include_pad=true, divisor_override=None, norm_type=None, lp_formula=None,
        output_size=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: &str,
        kernel_size: Option<Vec<usize>>,
        stride: Option<Vec<usize>>,
        padding: Option<Vec<usize>>,
        pads: Option<Vec<usize>>,
        auto_pad: Option<&str>,
        dilation: Option<Vec<usize>>,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: Option<usize>,
        norm_type: Option<f64>,
        lp_formula: Option<&str>,
        output_size: Option<Vec<usize>>,
    ) -> PyResult<Self> {
        let regular = || -> PyResult<PoolGeometry> {
            let kernel =
                kernel_size.clone().ok_or_else(|| PyValueError::new_err(format!("{kind}: kernel_size is required")))?;
            let mut g = PoolGeometry::new(&kernel).ceil_mode(ceil_mode);
            if let Some(s) = &stride {
                if !s.is_empty() {
                    g = g.stride(s);
                }
            }
            if let Some(d) = &dilation {
                g = g.dilation(d);
            }
            Ok(g.padding(padding_of(padding.clone(), pads.clone(), auto_pad)?))
        };
        let adaptive =
            || output_size.clone().ok_or_else(|| PyValueError::new_err(format!("{kind}: output_size is required")));
        let avg = |p: AvgPool| p.count_include_pad(count_include_pad).divisor_override(divisor_override);
        let op = match kind {
            "max" => Operator::Max(MaxPool::new(regular()?)),
            "avg" => Operator::Avg(avg(AvgPool::new(regular()?))),
            "lp" => {
                let p = norm_type.ok_or_else(|| PyValueError::new_err("lp: norm_type is required"))?;
                let formula = match lp_formula.unwrap_or("auto") {
                    "auto" => LpFormula::Auto,
                    "torch" => LpFormula::PyTorch,
                    "onnx" => LpFormula::Onnx,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "lp_formula must be 'auto', 'torch' or 'onnx', got '{other}'"
                        )))
                    }
                };
                Operator::Lp(LpPool::new(regular()?, p).formula(formula))
            }
            "adaptive_max" => Operator::Max(MaxPool::adaptive(&adaptive()?)),
            "adaptive_avg" => Operator::Avg(avg(AvgPool::adaptive(&adaptive()?))),
            "global_max" => Operator::Max(MaxPool::global()),
            "global_avg" => Operator::Avg(avg(AvgPool::global())),
            other => return Err(PyValueError::new_err(format!("unknown pooling kind '{other}'"))),
        };
        Ok(PyOperator { op })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.op)
    }

    /// The output's dims for an input of `input_shape` (in `layout`).
    fn output_shape(&self, input_shape: Vec<usize>, layout: &str) -> PyResult<Vec<usize>> {
        let layout = layout_of(layout)?;
        Ok(self.op.output_shape(&shape_of(&input_shape, layout)?).map_err(py_err)?.dims(layout))
    }

    /// Forward values. Max pooling also takes integer inputs.
    #[pyo3(signature = (x, layout, bf16=false))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = layout_of(layout)?;
        if let Operator::Max(pool) = &self.op {
            if let Some((y, _)) = arrays::integer_max(py, pool, x, layout)? {
                return Ok(y);
            }
        }
        fn run<'py, W: Wire, T: Element + bytemuck::Pod>(
            py: Python<'py>,
            op: &Operator,
            x: &Bound<'py, PyAny>,
            layout: Layout,
        ) -> PyResult<Bound<'py, PyAny>> {
            let (xa, dims) = read::<W>(x, "x")?;
            let data: &[T] = bytemuck::cast_slice(&xa);
            let y = compute(py, || op.forward(&view(data, &dims, layout)?)).map_err(py_err)?;
            array_out::<W, T>(py, y, layout)
        }
        by_float!(float_kind(x, bf16)?, run(py, &self.op, x, layout))
    }

    /// Max pooling forward with PyTorch's indices (int64, flat within each plane).
    #[pyo3(signature = (x, layout, bf16=false))]
    fn forward_with_indices<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let layout = layout_of(layout)?;
        let pool = self.max()?;
        if let Some(result) = arrays::integer_max(py, pool, x, layout)? {
            return Ok(result);
        }
        fn run<'py, W: Wire, T: Element + bytemuck::Pod>(
            py: Python<'py>,
            pool: &MaxPool,
            x: &Bound<'py, PyAny>,
            layout: Layout,
        ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
            let (xa, dims) = read::<W>(x, "x")?;
            let data: &[T] = bytemuck::cast_slice(&xa);
            let out = compute(py, || pool.forward_with_indices(&view(data, &dims, layout)?)).map_err(py_err)?;
            Ok((array_out::<W, T>(py, out.output, layout)?, array_out::<i64, i64>(py, out.indices, layout)?))
        }
        by_float!(float_kind(x, bf16)?, run(py, pool, x, layout))
    }

    /// The gradient w.r.t. the input, from the input and the output gradient.
    #[pyo3(signature = (x, grad_output, layout, bf16=false))]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        grad_output: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.two_arrays(py, x, grad_output, "grad_output", layout, bf16, Step::Backward)
    }

    /// Double backward: the forward's directional derivative along `grad_grad_input`.
    #[pyo3(signature = (x, grad_grad_input, layout, bf16=false))]
    fn double_backward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        grad_grad_input: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.two_arrays(py, x, grad_grad_input, "grad_grad_input", layout, bf16, Step::DoubleBackward)
    }

    /// The input part of the double backward (`H·v`): `None` for max and average pooling
    /// (zero), LP's Hessian-vector product otherwise.
    #[pyo3(signature = (x, grad_output, grad_grad_input, layout, bf16=false))]
    fn double_backward_input<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        grad_output: &Bound<'py, PyAny>,
        grad_grad_input: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let layout = layout_of(layout)?;
        let kind = float_kind(x, bf16)?;
        same_kind(kind, &[("grad_output", grad_output), ("grad_grad_input", grad_grad_input)], bf16)?;
        fn run<'py, W: Wire, T: Element + bytemuck::Pod>(
            py: Python<'py>,
            op: &Operator,
            arrays: [&Bound<'py, PyAny>; 3],
            layout: Layout,
        ) -> PyResult<Option<Bound<'py, PyAny>>> {
            let (xa, xd) = read::<W>(arrays[0], "x")?;
            let (ga, gd) = read::<W>(arrays[1], "grad_output")?;
            let (va, vd) = read::<W>(arrays[2], "grad_grad_input")?;
            let (x, g, v): (&[T], &[T], &[T]) =
                (bytemuck::cast_slice(&xa), bytemuck::cast_slice(&ga), bytemuck::cast_slice(&va));
            let out = compute(py, || {
                op.double_backward_input(&view(x, &xd, layout)?, &view(g, &gd, layout)?, &view(v, &vd, layout)?)
            })
            .map_err(py_err)?;
            out.map(|t| array_out::<W, T>(py, t, layout)).transpose()
        }
        by_float!(kind, run(py, &self.op, [x, grad_output, grad_grad_input], layout))
    }

    /// Average pooling backward from the input's shape alone (it is linear).
    #[pyo3(signature = (input_shape, grad_output, layout, bf16=false))]
    fn backward_from_shape<'py>(
        &self,
        py: Python<'py>,
        input_shape: Vec<usize>,
        grad_output: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = layout_of(layout)?;
        let Operator::Avg(pool) = &self.op else {
            return Err(PyValueError::new_err("a backward from the shape alone exists for average pooling only"));
        };
        let input = shape_of(&input_shape, layout)?;
        by_float!(
            float_kind(grad_output, bf16)?,
            single(py, grad_output, layout, |g| pool.backward_from_shape(&input, g))
        )
    }

    /// Max pooling backward from saved indices (a scatter-add, as PyTorch's).
    #[pyo3(signature = (input_shape, grad_output, indices, layout, bf16=false))]
    fn backward_with_indices<'py>(
        &self,
        py: Python<'py>,
        input_shape: Vec<usize>,
        grad_output: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = layout_of(layout)?;
        let pool = self.max()?;
        let input = shape_of(&input_shape, layout)?;
        by_float!(
            float_kind(grad_output, bf16)?,
            indexed(py, grad_output, indices, layout, |g, i| pool.backward_with_indices(&input, g, i))
        )
    }

    /// Max pooling double backward from saved indices (a gather at the argmax).
    #[pyo3(signature = (grad_grad_input, indices, layout, bf16=false))]
    fn double_backward_with_indices<'py>(
        &self,
        py: Python<'py>,
        grad_grad_input: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        layout: &str,
        bf16: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = layout_of(layout)?;
        let pool = self.max()?;
        by_float!(
            float_kind(grad_grad_input, bf16)?,
            indexed(py, grad_grad_input, indices, layout, |v, i| pool.double_backward_with_indices(v, i))
        )
    }
}

#[derive(Clone, Copy)]
enum Step {
    Backward,
    DoubleBackward,
}

impl PyOperator {
    fn max(&self) -> PyResult<&MaxPool> {
        match &self.op {
            Operator::Max(pool) => Ok(pool),
            _ => Err(PyValueError::new_err("indices exist for max pooling only")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn two_arrays<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        other: &Bound<'py, PyAny>,
        other_name: &str,
        layout: &str,
        bf16: bool,
        step: Step,
    ) -> PyResult<Bound<'py, PyAny>> {
        let layout = layout_of(layout)?;
        let kind = float_kind(x, bf16)?;
        same_kind(kind, &[(other_name, other)], bf16)?;
        fn run<'py, W: Wire, T: Element + bytemuck::Pod>(
            py: Python<'py>,
            op: &Operator,
            x: &Bound<'py, PyAny>,
            other: &Bound<'py, PyAny>,
            layout: Layout,
            step: Step,
        ) -> PyResult<Bound<'py, PyAny>> {
            let (xa, xd) = read::<W>(x, "x")?;
            let (oa, od) = read::<W>(other, "gradient")?;
            let (x, o): (&[T], &[T]) = (bytemuck::cast_slice(&xa), bytemuck::cast_slice(&oa));
            let out = compute(py, || {
                let (x, o) = (view(x, &xd, layout)?, view(o, &od, layout)?);
                match step {
                    Step::Backward => op.backward(&x, &o),
                    Step::DoubleBackward => op.double_backward(&x, &o),
                }
            })
            .map_err(py_err)?;
            array_out::<W, T>(py, out, layout)
        }
        by_float!(kind, run(py, &self.op, x, other, layout, step))
    }
}

/// Runs `f` on one float array, returning a float array of its kind.
fn single<'py, W: Wire, T: Element + bytemuck::Pod>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    layout: Layout,
    f: impl Fn(&TensorView<'_, T>) -> Result<Tensor<T>, PoolError> + Send + Sync,
) -> PyResult<Bound<'py, PyAny>> {
    let (aa, ad) = read::<W>(a, "array")?;
    let data: &[T] = bytemuck::cast_slice(&aa);
    let out = compute(py, || f(&view(data, &ad, layout)?)).map_err(py_err)?;
    array_out::<W, T>(py, out, layout)
}

/// Runs `f` on a float array and an int64 index array (same layout), returning a float
/// array of the array's kind.
fn indexed<'py, W: Wire, T: Element + bytemuck::Pod>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    layout: Layout,
    f: impl Fn(&TensorView<'_, T>, &TensorView<'_, i64>) -> Result<Tensor<T>, PoolError> + Send + Sync,
) -> PyResult<Bound<'py, PyAny>> {
    let (aa, ad) = read::<W>(a, "array")?;
    let (ia, id) = read::<i64>(indices, "indices")?;
    let (data, idx): (&[T], &[i64]) = (bytemuck::cast_slice(&aa), &ia);
    let out = compute(py, || f(&view(data, &ad, layout)?, &view(idx, &id, layout)?)).map_err(py_err)?;
    array_out::<W, T>(py, out, layout)
}

/// Fractional max pooling forward (PyTorch's windows, explicit samples of shape (N, C, k)).
#[pyfunction]
#[pyo3(signature = (x, kernel_size, output_size, samples, layout, bf16=false))]
fn fractional_max_pool<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kernel_size: Vec<usize>,
    output_size: Vec<usize>,
    samples: &Bound<'py, PyAny>,
    layout: &str,
    bf16: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let layout = layout_of(layout)?;
    let kind = float_kind(x, bf16)?;
    same_kind(kind, &[("samples", samples)], bf16)?;
    let pool = FractionalMaxPool::new(&kernel_size, &output_size);
    fn run<'py, W: Wire, T: Element + bytemuck::Pod>(
        py: Python<'py>,
        pool: &FractionalMaxPool,
        x: &Bound<'py, PyAny>,
        samples: &Bound<'py, PyAny>,
        layout: Layout,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (xa, xd) = read::<W>(x, "x")?;
        let (sa, _) = read::<W>(samples, "samples")?;
        let (x, s): (&[T], &[T]) = (bytemuck::cast_slice(&xa), bytemuck::cast_slice(&sa));
        let out = compute(py, || pool.forward_with_indices(&view(x, &xd, layout)?, s)).map_err(py_err)?;
        Ok((array_out::<W, T>(py, out.output, layout)?, array_out::<i64, i64>(py, out.indices, layout)?))
    }
    by_float!(kind, run(py, &pool, x, samples, layout))
}

/// Fractional max pooling backward from saved indices.
#[pyfunction]
#[pyo3(signature = (input_shape, grad_output, indices, kernel_size, output_size, layout, bf16=false))]
#[allow(clippy::too_many_arguments)]
fn fractional_max_pool_backward<'py>(
    py: Python<'py>,
    input_shape: Vec<usize>,
    grad_output: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    kernel_size: Vec<usize>,
    output_size: Vec<usize>,
    layout: &str,
    bf16: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = layout_of(layout)?;
    let input = shape_of(&input_shape, layout)?;
    let pool = FractionalMaxPool::new(&kernel_size, &output_size);
    by_float!(
        float_kind(grad_output, bf16)?,
        indexed(py, grad_output, indices, layout, |g, i| pool.backward_with_indices(&input, g, i))
    )
}

/// Fractional max pooling double backward (a gather at the argmax).
#[pyfunction]
#[pyo3(signature = (grad_grad_input, indices, kernel_size, output_size, layout, bf16=false))]
fn fractional_max_pool_double_backward<'py>(
    py: Python<'py>,
    grad_grad_input: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    kernel_size: Vec<usize>,
    output_size: Vec<usize>,
    layout: &str,
    bf16: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = layout_of(layout)?;
    let pool = FractionalMaxPool::new(&kernel_size, &output_size);
    by_float!(
        float_kind(grad_grad_input, bf16)?,
        indexed(py, grad_grad_input, indices, layout, |v, i| pool.double_backward_with_indices(v, i))
    )
}

fn unpool_of(kernel_size: &[usize], stride: Option<Vec<usize>>, padding: Vec<usize>) -> MaxUnpool {
    let pool = MaxUnpool::new(kernel_size).padding(&padding);
    match stride {
        Some(s) if !s.is_empty() => pool.stride(&s),
        _ => pool,
    }
}

/// Max unpooling (PyTorch's indices; `output_size`: the spatial size, default inferred).
/// `adjoint=True` gives its double backward (a scatter-add of `x`).
#[pyfunction]
#[pyo3(signature = (x, indices, kernel_size, stride, padding, output_size, layout, bf16=false, adjoint=false))]
#[allow(clippy::too_many_arguments)]
fn max_unpool<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    kernel_size: Vec<usize>,
    stride: Option<Vec<usize>>,
    padding: Vec<usize>,
    output_size: Option<Vec<usize>>,
    layout: &str,
    bf16: bool,
    adjoint: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = layout_of(layout)?;
    let pool = unpool_of(&kernel_size, stride, padding);
    let size = output_size.as_deref();
    by_float!(
        float_kind(x, bf16)?,
        indexed(py, x, indices, layout, |x, i| if adjoint {
            pool.double_backward(x, i, size)
        } else {
            pool.forward(x, i, size)
        })
    )
}

/// Max unpooling with ONNX's `MaxUnpool` semantics (whole-tensor indices, optional full
/// `output_shape`), channels-first.
#[pyfunction]
#[pyo3(signature = (x, indices, kernel_size, stride, pads, output_shape, bf16=false))]
#[allow(clippy::too_many_arguments)]
fn max_unpool_onnx<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    kernel_size: Vec<usize>,
    stride: Option<Vec<usize>>,
    pads: Option<Vec<usize>>,
    output_shape: Option<Vec<usize>>,
    bf16: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut pool = unpool_of(&kernel_size, stride, vec![0]);
    if let Some(Padding::Explicit { begin, end }) = Some(padding_of(None, pads, None)?) {
        pool = pool.pads(&begin, &end);
    }
    let shape = output_shape.as_deref();
    by_float!(
        float_kind(x, bf16)?,
        indexed(py, x, indices, Layout::ChannelsFirst, |x, i| pool.forward_onnx(x, i, shape))
    )
}

/// Max unpooling backward: the output gradient gathered at the indices.
#[pyfunction]
#[pyo3(signature = (grad_output, indices, kernel_size, stride, padding, layout, bf16=false))]
#[allow(clippy::too_many_arguments)]
fn max_unpool_backward<'py>(
    py: Python<'py>,
    grad_output: &Bound<'py, PyAny>,
    indices: &Bound<'py, PyAny>,
    kernel_size: Vec<usize>,
    stride: Option<Vec<usize>>,
    padding: Vec<usize>,
    layout: &str,
    bf16: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let layout = layout_of(layout)?;
    let pool = unpool_of(&kernel_size, stride, padding);
    // The gradient and the indices have different spatial sizes: read them apart.
    fn run<'py, W: Wire, T: Element + bytemuck::Pod>(
        py: Python<'py>,
        pool: &MaxUnpool,
        g: &Bound<'py, PyAny>,
        indices: &Bound<'py, PyAny>,
        layout: Layout,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ga, gd) = read::<W>(g, "grad_output")?;
        let (ia, id) = read::<i64>(indices, "indices")?;
        let (data, idx): (&[T], &[i64]) = (bytemuck::cast_slice(&ga), &ia);
        let out = compute(py, || pool.backward(&view(data, &gd, layout)?, &view(idx, &id, layout)?)).map_err(py_err)?;
        array_out::<W, T>(py, out, layout)
    }
    by_float!(float_kind(grad_output, bf16)?, run(py, &pool, grad_output, indices, layout))
}

/// The explanation of one (n, c) plane: the terminal text (plain), the forward SVG and
/// the backward SVG, drawn by poolgrad-explain (the CLI's `explain` draws the same).
#[pyfunction]
#[pyo3(signature = (op, x, layout, title, plane, grad_output=None))]
fn explain<'py>(
    py: Python<'py>,
    op: &PyOperator,
    x: &Bound<'py, PyAny>,
    layout: &str,
    title: String,
    plane: (usize, usize),
    grad_output: Option<&Bound<'py, PyAny>>,
) -> PyResult<(String, String, String)> {
    let layout = layout_of(layout)?;
    let (xa, xd) = read::<f64>(x, "x")?;
    let shape = shape_of(&xd, layout)?;
    let (n, c) = plane;
    if n >= shape.batch || c >= shape.channels {
        return Err(PyValueError::new_err(format!(
            "plane ({n}, {c}) is outside the input: needs n < {} and c < {}",
            shape.batch, shape.channels
        )));
    }
    let delta = match grad_output {
        None => None,
        Some(g) => {
            let (ga, gd) = read::<f64>(g, "grad_output")?;
            let out = op.op.output_shape(&shape).map_err(py_err)?;
            if gd != out.dims(layout) {
                return Err(PyValueError::new_err(format!(
                    "grad_output: shape {gd:?} but the output shape is {:?}",
                    out.dims(layout)
                )));
            }
            Some(poolgrad_explain::plane(&ga, &out, layout, n, c))
        }
    };
    let x = poolgrad_explain::plane(&xa, &shape, layout, n, c);
    let spatial = shape.spatial.clone();
    let ex = compute(py, || poolgrad_explain::explain(&op.op, title, &spatial, x, delta)).map_err(|e| match e {
        poolgrad_explain::ExplainError::Pool(e) => py_err(e),
        other => PyValueError::new_err(other.to_string()),
    })?;
    use poolgrad_explain::{svg, terminal};
    let plain = terminal::Style::Plain;
    let text = format!(
        " forward:\n{}\n\n backward:\n{}\n\n where each nonzero gradient comes from:\n{}",
        terminal::forward(&ex, plain),
        terminal::backward(&ex, plain),
        terminal::sums(&ex, plain)
    );
    Ok((text, svg::forward(&ex), svg::backward(&ex)))
}

/// The generated input values of `poolgrad explain --seed` (small integers, C order).
#[pyfunction]
fn seeded_values(n: usize, seed: u64) -> PyResult<Vec<f64>> {
    const LIMIT: usize = 1 << 24;
    if n > LIMIT {
        return Err(PyValueError::new_err(format!("a generated input holds at most {LIMIT} values, not {n}")));
    }
    Ok(poolgrad_explain::seeded_values(seed).take(n).collect())
}

/// Renders an SVG picture to PNG bytes (pure Rust, embedded font).
#[pyfunction]
fn svg_to_png(py: Python<'_>, svg: String) -> PyResult<Vec<u8>> {
    compute(py, || poolgrad_explain::png::render(&svg)).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The native module: see `python/poolgrad/__init__.py` for the documented API.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOperator>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(fractional_max_pool, m)?)?;
    m.add_function(wrap_pyfunction!(fractional_max_pool_backward, m)?)?;
    m.add_function(wrap_pyfunction!(fractional_max_pool_double_backward, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(max_unpool_backward, m)?)?;
    m.add_function(wrap_pyfunction!(explain, m)?)?;
    m.add_function(wrap_pyfunction!(svg_to_png, m)?)?;
    m.add_function(wrap_pyfunction!(seeded_values, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
