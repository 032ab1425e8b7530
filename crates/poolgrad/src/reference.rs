//! A plain, obviously-correct implementation, for tests and for anyone checking
//! another library: every output visits every tap of its window, with no tables, no
//! layout tricks and no parallelism. Slow by design.

use crate::error::Result;
use crate::geometry::{AxisGeometry, PoolGeometry};
use crate::tensor::{Element, Layout, MaxElement, Shape, Tensor, TensorView};

/// Memory offset of element (n, c, spatial cell s) in `layout`.
fn offset(shape: &Shape, layout: Layout, n: usize, c: usize, s: usize) -> usize {
    let plane: usize = shape.spatial.iter().product();
    match layout {
        Layout::ChannelsFirst => (n * shape.channels + c) * plane + s,
        Layout::ChannelsLast => (n * plane + s) * shape.channels + c,
    }
}

/// Row-major multi-index of `flat` over `dims`.
fn unflatten(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        idx[d] = flat % dims[d];
        flat /= dims[d];
    }
    idx
}

/// One tap of a window, as the reference sees it.
struct Tap {
    /// Flat input index if the tap is inside the input.
    cell: Option<usize>,
    /// Whether the tap is inside the input or its padding (not the ceil overhang).
    in_padded: bool,
}

/// All taps of output cell `out` (flat), in row-major window order.
fn taps(axes: &[AxisGeometry], out: usize) -> Vec<Tap> {
    let out_dims: Vec<usize> = axes.iter().map(|a| a.output).collect();
    let kernel: Vec<usize> = axes.iter().map(|a| a.kernel).collect();
    let o = unflatten(out, &out_dims);
    (0..kernel.iter().product::<usize>())
        .map(|t| {
            let j = unflatten(t, &kernel);
            let mut cell = Some(0usize);
            let mut in_padded = true;
            for (d, a) in axes.iter().enumerate() {
                let coord = (o[d] * a.stride + j[d] * a.dilation) as i64 - a.pad_begin as i64;
                if coord >= (a.input + a.pad_end) as i64 {
                    in_padded = false;
                }
                cell = match cell {
                    Some(flat) if coord >= 0 && coord < a.input as i64 => Some(flat * a.input + coord as usize),
                    _ => None,
                };
            }
            Tap { cell, in_padded }
        })
        .collect()
}

fn for_each_output<T>(
    x: &TensorView<'_, T>,
    geometry: &PoolGeometry,
    mut f: impl FnMut(usize, usize, usize, &[Tap]),
) -> Result<Shape> {
    let axes = geometry.resolve(&x.shape().spatial)?;
    let out_shape = Shape::new(x.shape().batch, x.shape().channels, &axes.iter().map(|a| a.output).collect::<Vec<_>>());
    let out_plane: usize = out_shape.spatial.iter().product();
    for o in 0..out_plane {
        let window = taps(&axes, o);
        for n in 0..out_shape.batch {
            for c in 0..out_shape.channels {
                f(n, c, o, &window);
            }
        }
    }
    Ok(out_shape)
}

/// Max pooling forward: values and PyTorch-format indices.
pub fn max_pool<T: MaxElement>(x: &TensorView<'_, T>, geometry: &PoolGeometry) -> Result<(Tensor<T>, Tensor<i64>)> {
    let out_shape = Shape::new(0, 0, &geometry.output_spatial(&x.shape().spatial)?);
    let mut values =
        vec![T::lowest(); x.shape().batch * x.shape().channels * out_shape.spatial.iter().product::<usize>()];
    let mut indices = vec![0i64; values.len()];
    let layout = x.layout();
    let shape = Shape::new(x.shape().batch, x.shape().channels, &out_shape.spatial);
    for_each_output(x, geometry, |n, c, o, window| {
        // PyTorch's rule, literally: start at -inf with the first valid tap's index,
        // take any value that is larger or NaN.
        let mut cells = window.iter().filter_map(|t| t.cell);
        let mut best = T::lowest();
        let mut arg = cells.clone().next().map_or(-1, |c| c as i64);
        for cell in cells.by_ref() {
            let v = x.data()[offset(x.shape(), layout, n, c, cell)];
            if v > best || v.is_nan() {
                best = v;
                arg = cell as i64;
            }
        }
        let at = offset(&shape, layout, n, c, o);
        values[at] = best;
        indices[at] = arg;
    })?;
    Ok((Tensor::new(values, shape.clone(), layout)?, Tensor::new(indices, shape, layout)?))
}

/// Max pooling backward: the gradient goes to the argmax of each window.
pub fn max_pool_backward<T: Element>(
    x: &TensorView<'_, T>,
    grad_output: &TensorView<'_, T>,
    geometry: &PoolGeometry,
) -> Result<Tensor<T>> {
    let (_, indices) = max_pool(x, geometry)?;
    let layout = x.layout();
    let mut grad = vec![T::zero(); x.data().len()];
    let out_shape = indices.shape().clone();
    for_each_output(x, geometry, |n, c, o, _| {
        let at = offset(&out_shape, layout, n, c, o);
        let i = indices.data()[at];
        if i >= 0 {
            let g = &mut grad[offset(x.shape(), layout, n, c, i as usize)];
            *g = g.add(grad_output.data()[at]);
        }
    })?;
    Tensor::new(grad, x.shape().clone(), layout)
}

fn divisor(window: &[Tap], count_include_pad: bool, divisor_override: Option<usize>) -> usize {
    divisor_override.unwrap_or_else(|| {
        window.iter().filter(|t| if count_include_pad { t.in_padded } else { t.cell.is_some() }).count()
    })
}

/// Average pooling forward.
pub fn avg_pool<T: Element>(
    x: &TensorView<'_, T>,
    geometry: &PoolGeometry,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Result<Tensor<T>> {
    let layout = x.layout();
    let out_shape = Shape::new(x.shape().batch, x.shape().channels, &geometry.output_spatial(&x.shape().spatial)?);
    let mut values = vec![T::zero(); out_shape.numel()?];
    for_each_output(x, geometry, |n, c, o, window| {
        let cells: Vec<usize> = window.iter().filter_map(|t| t.cell).collect();
        if cells.is_empty() {
            return;
        }
        let sum = cells
            .iter()
            .fold(T::zero().to_acc(), |s, &cell| s + x.data()[offset(x.shape(), layout, n, c, cell)].to_acc());
        values[offset(&out_shape, layout, n, c, o)] =
            T::from_acc(sum / T::count(divisor(window, count_include_pad, divisor_override)));
    })?;
    Tensor::new(values, out_shape, layout)
}

/// Average pooling backward.
pub fn avg_pool_backward<T: Element>(
    x: &TensorView<'_, T>,
    grad_output: &TensorView<'_, T>,
    geometry: &PoolGeometry,
    count_include_pad: bool,
    divisor_override: Option<usize>,
) -> Result<Tensor<T>> {
    let layout = x.layout();
    let out_shape = grad_output.shape().clone();
    let mut grad = vec![T::zero(); x.data().len()];
    for_each_output(x, geometry, |n, c, o, window| {
        let d = T::count(divisor(window, count_include_pad, divisor_override));
        let share = T::from_acc(grad_output.data()[offset(&out_shape, layout, n, c, o)].to_acc() / d);
        for cell in window.iter().filter_map(|t| t.cell) {
            let g = &mut grad[offset(x.shape(), layout, n, c, cell)];
            *g = g.add(share);
        }
    })?;
    Tensor::new(grad, x.shape().clone(), layout)
}

/// Adaptive pooling, plainly: window `[floor(i·I/O), ceil((i+1)·I/O))` per dim, reduced
/// by max (PyTorch's rule, index of the chosen cell) or mean. Returns values and, for
/// max, indices.
pub fn adaptive_pool<T: Element>(
    x: &TensorView<'_, T>,
    output: &[usize],
    max: bool,
) -> Result<(Tensor<T>, Tensor<i64>)> {
    let layout = x.layout();
    let shape = x.shape();
    let rank = shape.spatial.len();
    let output = crate::geometry::PerDim::new(output).expand("output_size", rank)?;
    let out_shape = Shape::new(shape.batch, shape.channels, &output);
    let mut values = vec![T::zero(); out_shape.numel()?];
    let mut indices = vec![-1i64; values.len()];
    let out_plane: usize = output.iter().product();
    for n in 0..shape.batch {
        for c in 0..shape.channels {
            for o in 0..out_plane {
                let oi = unflatten(o, &output);
                let bounds: Vec<(usize, usize)> =
                    (0..rank).map(|d| crate::geometry::adaptive_window(oi[d], shape.spatial[d], output[d])).collect();
                let sizes: Vec<usize> = bounds.iter().map(|(s, e)| e - s).collect();
                let count: usize = sizes.iter().product();
                let mut best = T::lowest();
                let mut arg = -1i64;
                let mut sum = T::zero().to_acc();
                for t in 0..count {
                    let j = unflatten(t, &sizes);
                    let cell = (0..rank).fold(0, |flat, d| flat * shape.spatial[d] + bounds[d].0 + j[d]);
                    let v = x.data()[offset(shape, layout, n, c, cell)];
                    if arg == -1 {
                        arg = cell as i64;
                    }
                    if v > best || v.is_nan() {
                        best = v;
                        arg = cell as i64;
                    }
                    sum = sum + v.to_acc();
                }
                let at = offset(&out_shape, layout, n, c, o);
                values[at] = if max { best } else { T::from_acc(sum / T::count(count)) };
                indices[at] = arg;
            }
        }
    }
    Ok((Tensor::new(values, out_shape.clone(), layout)?, Tensor::new(indices, out_shape, layout)?))
}

/// LP pooling with ONNX's formula, plainly: `(Σ |x|^p)^(1/p)` over each window's valid taps.
pub fn lp_pool_onnx<T: Element>(x: &TensorView<'_, T>, geometry: &PoolGeometry, p: f64) -> Result<Tensor<T>> {
    let layout = x.layout();
    let out_shape = Shape::new(x.shape().batch, x.shape().channels, &geometry.output_spatial(&x.shape().spatial)?);
    let mut values = vec![T::zero(); out_shape.numel()?];
    for_each_output(x, geometry, |n, c, o, window| {
        let sum: f64 = window
            .iter()
            .filter_map(|t| t.cell)
            .map(|cell| x.data()[offset(x.shape(), layout, n, c, cell)].to_f64().abs().powf(p))
            .sum();
        values[offset(&out_shape, layout, n, c, o)] = T::from_f64(sum.powf(1.0 / p));
    })?;
    Tensor::new(values, out_shape, layout)
}
