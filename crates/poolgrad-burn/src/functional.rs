//! Checked functions on burn tensors: every operator of the library, forward, backward and
//! double backward, any rank, both layouts.
//!
//! Each function checks its arguments with the library's own rules (the same errors as
//! everywhere in poolgrad) and then calls the [`PoolBackend`] operation through burn's
//! `Dispatch`, so it runs on whatever backend the tensor lives on (`Flex`, `NdArray`, or
//! `Autodiff` over either) and is differentiable there.

use burn::backend::{Dispatch, DispatchTensor};
use burn::tensor::{Int, Tensor};
use poolgrad::{FractionalMaxPool, Layout, MaxUnpool, Operator, PoolError, Pooling, Result, Shape};

use crate::backend::{supported, FractionalSpec, IndexSpec, PoolBackend, PoolSpec};

fn checked_shape<const D: usize>(what: &'static str, x: &Tensor<D>, layout: Layout) -> Result<Shape> {
    let dtype = x.dtype();
    if !supported(dtype) {
        return Err(PoolError::InvalidParameter {
            name: "dtype",
            reason: format!("{what} is {dtype:?}; poolgrad computes in f32, f64, f16 and bf16"),
        });
    }
    Shape::from_dims(&x.dims(), layout)
}

fn expect_dims(what: &'static str, got: &[usize], expected: Vec<usize>) -> Result<()> {
    if got == expected.as_slice() {
        Ok(())
    } else {
        Err(PoolError::ShapeMismatch { what, expected, got: got.to_vec() })
    }
}

fn float<const D: usize>(t: DispatchTensor) -> Tensor<D> {
    Tensor::from_dispatch(t)
}

/// Forward pass of a max, average or LP pooling (regular, adaptive or global windows)
/// over a `(N, C, d1, ..., dk)` tensor (`(N, d1, ..., dk, C)` with
/// [`Layout::ChannelsLast`]); `D = k + 2`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use poolgrad::{Layout, MaxPool, Operator, Padding, PoolGeometry};
/// let device = Device::flex();
/// let x = Tensor::<4>::from_floats([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]], &device);
/// let op = Operator::Max(MaxPool::new(PoolGeometry::new(&[2]).stride(&[1])));
/// let y = poolgrad_burn::functional::pool(x, &op, Layout::ChannelsFirst)?;
/// assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![5.0, 6.0, 8.0, 9.0]);
/// # Ok::<(), poolgrad::PoolError>(())
/// ```
pub fn pool<const D: usize>(x: Tensor<D>, op: &Operator, layout: Layout) -> Result<Tensor<D>> {
    op.output_shape(&checked_shape("input", &x, layout)?)?;
    let spec = PoolSpec { op: op.clone(), layout };
    Ok(float(<Dispatch as PoolBackend>::poolgrad_forward(x.into_dispatch(), spec)))
}

/// Max pooling with PyTorch's indices (flat per plane over the input's spatial dims, as
/// `max_pool2d(..., return_indices=True)`), for [`max_unpool`].
pub fn max_pool_with_indices<const D: usize>(
    x: Tensor<D>,
    op: &Operator,
    layout: Layout,
) -> Result<(Tensor<D>, Tensor<D, Int>)> {
    if !matches!(op, Operator::Max(_)) {
        return Err(PoolError::InvalidParameter { name: "op", reason: "indices come from max pooling only".into() });
    }
    op.output_shape(&checked_shape("input", &x, layout)?)?;
    let spec = PoolSpec { op: op.clone(), layout };
    let (y, indices) = <Dispatch as PoolBackend>::poolgrad_max_with_indices(x.into_dispatch(), spec);
    Ok((float(y), Tensor::from_dispatch(indices)))
}

/// The input gradient of [`pool`]: `Jᵀ·grad_output`. Differentiable itself (in `x` and in
/// `grad_output`) under `Autodiff`, which gives second derivatives.
pub fn pool_backward<const D: usize>(
    x: Tensor<D>,
    grad_output: Tensor<D>,
    op: &Operator,
    layout: Layout,
) -> Result<Tensor<D>> {
    let out = op.output_shape(&checked_shape("input", &x, layout)?)?;
    checked_shape("grad_output", &grad_output, layout)?;
    expect_dims("grad_output", &grad_output.dims(), out.dims(layout))?;
    let spec = PoolSpec { op: op.clone(), layout };
    Ok(float(<Dispatch as PoolBackend>::poolgrad_backward(x.into_dispatch(), grad_output.into_dispatch(), spec)))
}

/// The double backward of [`pool`]: `J·grad_grad_input`, the derivative of the backward
/// with respect to its grad-output along `grad_grad_input` (shaped like `x`; PyTorch's
/// `grad_grad_output`).
pub fn pool_double_backward<const D: usize>(
    x: Tensor<D>,
    grad_grad_input: Tensor<D>,
    op: &Operator,
    layout: Layout,
) -> Result<Tensor<D>> {
    op.output_shape(&checked_shape("input", &x, layout)?)?;
    checked_shape("grad_grad_input", &grad_grad_input, layout)?;
    expect_dims("grad_grad_input", &grad_grad_input.dims(), x.dims().to_vec())?;
    let spec = PoolSpec { op: op.clone(), layout };
    Ok(float(<Dispatch as PoolBackend>::poolgrad_double_backward(
        x.into_dispatch(),
        grad_grad_input.into_dispatch(),
        spec,
    )))
}

/// The double backward's input part: the derivative of the backward with respect to `x`
/// along `grad_grad_input` (`H·v`): LP's Hessian-vector product, zero for max and average.
pub fn pool_hessian_product<const D: usize>(
    x: Tensor<D>,
    grad_output: Tensor<D>,
    grad_grad_input: Tensor<D>,
    op: &Operator,
    layout: Layout,
) -> Result<Tensor<D>> {
    let out = op.output_shape(&checked_shape("input", &x, layout)?)?;
    checked_shape("grad_output", &grad_output, layout)?;
    expect_dims("grad_output", &grad_output.dims(), out.dims(layout))?;
    checked_shape("grad_grad_input", &grad_grad_input, layout)?;
    expect_dims("grad_grad_input", &grad_grad_input.dims(), x.dims().to_vec())?;
    let spec = PoolSpec { op: op.clone(), layout };
    Ok(float(<Dispatch as PoolBackend>::poolgrad_hessian_product(
        x.into_dispatch(),
        grad_output.into_dispatch(),
        grad_grad_input.into_dispatch(),
        spec,
    )))
}

/// Fractional max pooling (2-D or 3-D) with its indices. `samples` is the `(N, C, k)`
/// tensor of PyTorch's `_random_samples`, values in [0, 1); draw it with
/// `Tensor::random(..., Distribution::Uniform(0.0, 1.0), ...)` for PyTorch's behaviour.
pub fn fractional_max_pool<const D: usize>(
    x: Tensor<D>,
    samples: Tensor<3>,
    pool: &FractionalMaxPool,
    layout: Layout,
) -> Result<(Tensor<D>, Tensor<D, Int>)> {
    let shape = checked_shape("input", &x, layout)?;
    pool.output_shape(&shape)?;
    expect_dims("random_samples", &samples.dims(), vec![shape.batch, shape.channels, shape.spatial.len()])?;
    let u = samples
        .clone()
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .map_err(|e| PoolError::InvalidParameter { name: "random_samples", reason: format!("{e:?}") })?;
    if let Some(bad) = u.iter().find(|u| !(0.0..1.0).contains(*u)) {
        return Err(PoolError::InvalidParameter { name: "random_samples", reason: format!("{bad} is not in [0, 1)") });
    }
    let samples = samples.cast(x.dtype());
    let spec = FractionalSpec { pool: pool.clone(), layout };
    let (y, indices) =
        <Dispatch as PoolBackend>::poolgrad_fractional_max(x.into_dispatch(), samples.into_dispatch(), spec);
    Ok((float(y), Tensor::from_dispatch(indices)))
}

/// Checks per-plane indices against the size of the wide side; returns its spatial dims.
fn checked_indices<const D: usize>(
    indices: &Tensor<D, Int>,
    narrow: &Shape,
    wide_spatial: Vec<usize>,
    layout: Layout,
) -> Result<Vec<usize>> {
    expect_dims("indices", &indices.dims(), narrow.dims(layout))?;
    let plane = Shape::new(1, 1, &wide_spatial).numel()? as i64;
    let values = indices.clone().into_data().convert::<i64>();
    let values = values
        .as_slice::<i64>()
        .map_err(|e| PoolError::InvalidParameter { name: "indices", reason: format!("{e:?}") })?;
    if let Some((position, &index)) = values.iter().enumerate().find(|(_, &i)| i < 0 || i >= plane) {
        return Err(PoolError::InvalidIndex { index, position, plane_size: plane as usize });
    }
    Ok(wide_spatial)
}

/// Max unpooling (PyTorch's `max_unpool{1,2,3}d`): each value goes to the cell of the
/// output its index names, the rest is zero. `output_size` (spatial, one value or one per
/// dim) overrides the default size `(in − 1)·stride − pads + kernel`.
pub fn max_unpool<const D: usize>(
    x: Tensor<D>,
    indices: Tensor<D, Int>,
    unpool: &MaxUnpool,
    output_size: Option<&[usize]>,
    layout: Layout,
) -> Result<Tensor<D>> {
    let shape = checked_shape("input", &x, layout)?;
    let wide = match output_size {
        Some(size) => poolgrad::geometry::PerDim::new(size).expand("output_size", shape.spatial.len())?,
        None => unpool.default_output(&shape.spatial)?,
    };
    let wide_spatial = checked_indices(&indices, &shape, wide, layout)?;
    let spec = IndexSpec { wide_spatial, layout };
    Ok(float(<Dispatch as PoolBackend>::poolgrad_unpool(x.into_dispatch(), indices.into_dispatch(), spec)))
}

/// The backward of max and fractional max pooling from saved indices: `grad_output`
/// scattered (added) into a zero tensor of `x_dims`. Differentiable (its backward is
/// [`gather`], PyTorch's max-pool double backward).
pub fn scatter_add<const D: usize>(
    grad_output: Tensor<D>,
    indices: Tensor<D, Int>,
    x_dims: [usize; D],
    layout: Layout,
) -> Result<Tensor<D>> {
    let narrow = checked_shape("grad_output", &grad_output, layout)?;
    let wide = Shape::from_dims(&x_dims, layout)?;
    if (wide.batch, wide.channels) != (narrow.batch, narrow.channels) {
        return Err(PoolError::ShapeMismatch { what: "x_dims", expected: narrow.dims(layout), got: x_dims.to_vec() });
    }
    let wide_spatial = checked_indices(&indices, &narrow, wide.spatial, layout)?;
    let spec = IndexSpec { wide_spatial, layout };
    Ok(float(<Dispatch as PoolBackend>::poolgrad_scatter_add(
        grad_output.into_dispatch(),
        indices.into_dispatch(),
        spec,
    )))
}

/// `out[o] = wide[indices[o]]` per plane: the backward of max unpooling and the double
/// backward of max pooling. Differentiable (its backward is [`scatter_add`]).
pub fn gather<const D: usize>(wide: Tensor<D>, indices: Tensor<D, Int>, layout: Layout) -> Result<Tensor<D>> {
    let wide_shape = checked_shape("input", &wide, layout)?;
    let narrow = Shape::from_dims(&indices.dims(), layout)?;
    if (wide_shape.batch, wide_shape.channels) != (narrow.batch, narrow.channels) {
        return Err(PoolError::ShapeMismatch {
            what: "indices",
            expected: wide_shape.dims(layout),
            got: indices.dims().to_vec(),
        });
    }
    checked_indices(&indices, &narrow, wide_shape.spatial, layout)?;
    Ok(float(<Dispatch as PoolBackend>::poolgrad_gather(wide.into_dispatch(), indices.into_dispatch(), layout)))
}
