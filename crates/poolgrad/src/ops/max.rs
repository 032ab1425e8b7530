//! Max pooling — regular, adaptive and global — with argmax indices; backward and
//! double backward along the indices.

use super::{expect_buffer, fresh, zeroed, Plan, Pooling, WindowSpec};
use crate::error::{PoolError, Result};
use crate::geometry::{PerDim, PoolGeometry};
use crate::kernels;
use crate::kernels::buffer::Out;
use crate::kernels::indexed::{ScatterWrite, Sides};
use crate::kernels::max::Argmax;
use crate::tensor::{Blocking, Element, Layout, MaxElement, Shape, Tensor, TensorView};

/// Max pooling (PyTorch `max_pool{1,2,3}d`, `adaptive_max_pool{1,2,3}d`, ONNX `MaxPool`,
/// `GlobalMaxPool`), in any number of spatial dims.
///
/// Semantics are PyTorch's: padding is never read; the update is `v > max || isnan(v)`, so
/// ties go to the first maximum in row-major window order and a NaN propagates with the
/// index of the last NaN. A window with no input cell at all (possible with dilation and
/// ceil mode, or ONNX pads wider than the kernel) outputs the lowest value (`-inf`) with
/// index -1 and sends no gradient. The forward takes integer inputs too.
///
/// ```
/// use poolgrad::{MaxPool, PoolGeometry, Layout, Shape, Tensor};
/// // The seed's example: 4x4 input, 2x2 windows, stride 2.
/// let x = Tensor::new((0..16).map(|v| v as f32).collect(), Shape::new(1, 1, &[4, 4]), Layout::ChannelsFirst).unwrap();
/// let pool = MaxPool::new(PoolGeometry::new(&[2, 2]));
/// let y = pool.forward_with_indices(&x.view()).unwrap();
/// assert_eq!(y.output.data(), &[5.0, 7.0, 13.0, 15.0]);
/// assert_eq!(y.indices.data(), &[5, 7, 13, 15]);
/// let g = Tensor::new(vec![1.0f32; 4], y.output.shape().clone(), Layout::ChannelsFirst).unwrap();
/// let gx = pool.backward_with_indices(x.shape(), &g.view(), &y.indices.view()).unwrap();
/// assert_eq!(gx.data()[5], 1.0);
/// assert_eq!(gx.data()[4], 0.0);
/// // Adaptive and global windows use the same reduction.
/// let global = MaxPool::global().forward_with_indices(&x.view()).unwrap();
/// assert_eq!((global.output.data(), global.indices.data()), (&[15.0f32][..], &[15i64][..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool {
    /// Where the windows are.
    pub windows: WindowSpec,
}

/// The result of a training forward: values and PyTorch-format argmax indices (flat
/// row-major index into the spatial plane of the same (n, c), whatever the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPoolOutput<T> {
    /// The pooled values.
    pub output: Tensor<T>,
    /// Argmax per output element, same shape and layout as `output`.
    pub indices: Tensor<i64>,
}

/// The result of a compact training forward: values and, per output, the position of
/// its argmax among its window's valid taps (row-major window order) in one byte — 8x
/// less memory than PyTorch's `int64` indices. Only for windows of at most 256 taps.
/// [`MaxPool::backward_compact`] takes it back; [`MaxPool::compact_to_indices`] gives
/// PyTorch's indices on request.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPoolCompactOutput<T> {
    /// The pooled values.
    pub output: Tensor<T>,
    /// Argmax tap per output element, same shape and layout as `output` (0 for a window
    /// with no valid tap, which sends no gradient).
    pub taps: Tensor<u8>,
}

/// How ONNX flattens a spatial index (`storage_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageOrder {
    /// Row-major (`storage_order = 0`).
    #[default]
    RowMajor,
    /// Column-major (`storage_order = 1`): the first spatial dim varies fastest.
    ColumnMajor,
}

impl MaxPool {
    /// Max pooling over regular windows.
    pub fn new(geometry: PoolGeometry) -> Self {
        MaxPool { windows: WindowSpec::Regular(geometry) }
    }

    /// Adaptive max pooling to `output_size` (one value, or one per spatial dim).
    pub fn adaptive(output_size: &[usize]) -> Self {
        MaxPool { windows: WindowSpec::Adaptive(PerDim::new(output_size)) }
    }

    /// Global max pooling: one window per plane.
    pub fn global() -> Self {
        MaxPool { windows: WindowSpec::Global }
    }

    /// Forward pass returning values and argmax indices (what the backward needs).
    pub fn forward_with_indices<T: MaxElement>(&self, x: &TensorView<'_, T>) -> Result<MaxPoolOutput<T>> {
        let plan = self.windows.plan(x.shape())?;
        let (output, indices) = Self::forward_planned(&plan, x)?;
        Ok(MaxPoolOutput { output, indices })
    }

    /// The forward into fresh buffers of `plan`'s output (values, and indices or taps).
    fn forward_planned<T: MaxElement, A: Argmax>(plan: &Plan, x: &TensorView<'_, T>) -> Result<(Tensor<T>, Tensor<A>)> {
        let (mut out, mut state) = (fresh::<T>(&plan.output)?, fresh::<A>(&plan.output)?);
        kernels::max::forward(x.data(), Blocking::of(x.shape(), x.layout()), &plan.windows, out.out(), state.out())?;
        let (out, state) = (out.finish()?, state.finish()?);
        Ok((Tensor::new(out, plan.output.clone(), x.layout())?, Tensor::new(state, plan.output.clone(), x.layout())?))
    }

    /// [`Self::forward_with_indices`] into caller-owned buffers, so that a training loop
    /// allocates nothing per step: `output` and `indices` must hold exactly the output's
    /// elements ([`Pooling::output_shape`], in `x`'s layout). Every element is
    /// overwritten (buffers need no clearing); returns the output's shape.
    ///
    /// ```
    /// use poolgrad::{Layout, MaxPool, PoolGeometry, Pooling, Shape, Tensor};
    /// let pool = MaxPool::new(PoolGeometry::new(&[2]));
    /// let x = Tensor::new(vec![1.0f32, 5.0, 2.0, 3.0], Shape::new(1, 1, &[4]), Layout::ChannelsFirst)?;
    /// let (mut y, mut indices) = (vec![0.0f32; 2], vec![0i64; 2]);
    /// for _step in 0..3 {
    ///     pool.forward_with_indices_into(&x.view(), &mut y, &mut indices)?;
    /// }
    /// assert_eq!((y, indices), (vec![5.0, 3.0], vec![1, 3]));
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn forward_with_indices_into<T: MaxElement>(
        &self,
        x: &TensorView<'_, T>,
        output: &mut [T],
        indices: &mut [i64],
    ) -> Result<Shape> {
        let plan = self.windows.plan(x.shape())?;
        let layout = x.layout();
        expect_buffer("output", output, &plan.output, layout)?;
        expect_buffer("indices", indices, &plan.output, layout)?;
        kernels::max::forward(x.data(), Blocking::of(x.shape(), layout), &plan.windows, output.into(), indices.into())?;
        Ok(plan.output)
    }

    /// Training forward with the compact 1-byte argmax state (see [`MaxPoolCompactOutput`]).
    /// Values are the same as [`Self::forward_with_indices`]'; a geometry with a window of
    /// more than 256 taps is an error.
    ///
    /// ```
    /// use poolgrad::{MaxPool, PoolGeometry, Padding, Layout, Shape, Tensor};
    /// let x = Tensor::new((0..25).map(|v| ((v * 7) % 11) as f32).collect(), Shape::new(1, 1, &[5, 5]), Layout::ChannelsFirst).unwrap();
    /// let pool = MaxPool::new(PoolGeometry::new(&[3, 3]).stride(&[2, 2]).padding(Padding::Symmetric(vec![1, 1])));
    /// let compact = pool.forward_compact(&x.view()).unwrap();
    /// let full = pool.forward_with_indices(&x.view()).unwrap();
    /// assert_eq!(compact.output, full.output);
    /// // The taps name the same cells as PyTorch's indices.
    /// assert_eq!(pool.compact_to_indices(x.shape(), &compact.taps.view()).unwrap(), full.indices);
    /// // And the backward from them is the same.
    /// let g = full.output.clone();
    /// assert_eq!(
    ///     pool.backward_compact(x.shape(), &g.view(), &compact.taps.view()).unwrap(),
    ///     pool.backward_with_indices(x.shape(), &g.view(), &full.indices.view()).unwrap(),
    /// );
    /// ```
    pub fn forward_compact<T: MaxElement>(&self, x: &TensorView<'_, T>) -> Result<MaxPoolCompactOutput<T>> {
        let plan = self.windows.plan(x.shape())?;
        Self::check_compact(&plan)?;
        let (output, taps) = Self::forward_planned(&plan, x)?;
        Ok(MaxPoolCompactOutput { output, taps })
    }

    /// [`Self::forward_compact`] into caller-owned buffers of exactly the output's
    /// elements (every element overwritten); returns the output's shape.
    pub fn forward_compact_into<T: MaxElement>(
        &self,
        x: &TensorView<'_, T>,
        output: &mut [T],
        taps: &mut [u8],
    ) -> Result<Shape> {
        let plan = self.windows.plan(x.shape())?;
        Self::check_compact(&plan)?;
        let layout = x.layout();
        expect_buffer("output", output, &plan.output, layout)?;
        expect_buffer("taps", taps, &plan.output, layout)?;
        kernels::max::forward(x.data(), Blocking::of(x.shape(), layout), &plan.windows, output.into(), taps.into())?;
        Ok(plan.output)
    }

    /// Backward from the compact state: each output's gradient is added to the cell its
    /// tap names; overlapping windows accumulate (the same sums as
    /// [`Self::backward_with_indices`]).
    pub fn backward_compact<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        taps: &TensorView<'_, u8>,
    ) -> Result<Tensor<T>> {
        let mut grad_in = fresh::<T>(input_shape)?;
        self.backward_compact_to(input_shape, grad_output, taps, grad_in.out())?;
        Tensor::new(grad_in.finish()?, input_shape.clone(), grad_output.layout())
    }

    /// [`Self::backward_compact`] into a caller-owned buffer of exactly the input's
    /// elements (every element overwritten).
    pub fn backward_compact_into<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        taps: &TensorView<'_, u8>,
        grad_input: &mut [T],
    ) -> Result<()> {
        expect_buffer("grad_input", grad_input, input_shape, grad_output.layout())?;
        self.backward_compact_to(input_shape, grad_output, taps, grad_input.into())
    }

    fn backward_compact_to<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        taps: &TensorView<'_, u8>,
        grad_input: Out<'_, T>,
    ) -> Result<()> {
        let (plan, sides) = self.checked_plan(input_shape, grad_output, taps, ("grad_output", "taps"))?;
        kernels::indexed::scatter_taps(sides, &plan.windows, grad_output.data(), taps.data(), grad_input)
    }

    /// PyTorch's `int64` indices from the compact state.
    pub fn compact_to_indices(&self, input_shape: &Shape, taps: &TensorView<'_, u8>) -> Result<Tensor<i64>> {
        let (plan, sides) = self.checked_plan(input_shape, taps, taps, ("taps", "taps"))?;
        let mut indices = zeroed::<i64>(&plan.output)?;
        kernels::indexed::taps_to_indices(sides, &plan.windows, taps.data(), &mut indices)?;
        Tensor::new(indices, plan.output, taps.layout())
    }

    fn check_compact(plan: &Plan) -> Result<()> {
        let taps = plan.windows.max_cells()?;
        if taps > 256 {
            return Err(PoolError::InvalidParameter {
                name: "kernel",
                reason: format!("windows have up to {taps} taps; the compact argmax state holds at most 256 (use forward_with_indices)"),
            });
        }
        Ok(())
    }

    /// The plan of a backward-like call: `narrow` (named `names.0`) and the argmax state
    /// (`names.1`) must have the output's shape, in the same layout.
    fn checked_plan<T, I>(
        &self,
        input_shape: &Shape,
        narrow: &TensorView<'_, T>,
        state: &TensorView<'_, I>,
        names: (&'static str, &'static str),
    ) -> Result<(Plan, Sides)> {
        let plan = self.windows.plan(input_shape)?;
        let layout = narrow.layout();
        plan.expect_output(names.0, narrow, layout)?;
        plan.expect_output(names.1, state, layout)?;
        let sides = plan.sides(input_shape, layout);
        Ok((plan, sides))
    }

    /// Backward pass from saved indices: each output's gradient is added to the input
    /// cell its index names; overlapping windows accumulate.
    pub fn backward_with_indices<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
    ) -> Result<Tensor<T>> {
        let mut grad_in = fresh::<T>(input_shape)?;
        self.backward_with_indices_to(input_shape, grad_output, indices, grad_in.out())?;
        Tensor::new(grad_in.finish()?, input_shape.clone(), grad_output.layout())
    }

    /// [`Self::backward_with_indices`] into a caller-owned buffer of exactly the input's
    /// elements (every element overwritten: no clearing needed between steps).
    ///
    /// ```
    /// use poolgrad::{Layout, MaxPool, PoolGeometry, Shape, Tensor};
    /// let pool = MaxPool::new(PoolGeometry::new(&[2]));
    /// let input = Shape::new(1, 1, &[4]);
    /// let g = Tensor::new(vec![1.0f32, 2.0], Shape::new(1, 1, &[2]), Layout::ChannelsFirst)?;
    /// let indices = Tensor::new(vec![1i64, 3], Shape::new(1, 1, &[2]), Layout::ChannelsFirst)?;
    /// let mut grad_input = vec![f32::NAN; 4]; // reused: whatever it held is overwritten
    /// pool.backward_with_indices_into(&input, &g.view(), &indices.view(), &mut grad_input)?;
    /// assert_eq!(grad_input, vec![0.0, 1.0, 0.0, 2.0]);
    /// # Ok::<(), poolgrad::PoolError>(())
    /// ```
    pub fn backward_with_indices_into<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
        grad_input: &mut [T],
    ) -> Result<()> {
        expect_buffer("grad_input", grad_input, input_shape, grad_output.layout())?;
        self.backward_with_indices_to(input_shape, grad_output, indices, grad_input.into())
    }

    fn backward_with_indices_to<T: Element>(
        &self,
        input_shape: &Shape,
        grad_output: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
        grad_input: Out<'_, T>,
    ) -> Result<()> {
        let (plan, sides) = self.checked_plan(input_shape, grad_output, indices, ("grad_output", "indices"))?;
        let write = match (plan.windows.read_input_about_once(), plan.windows.repeat_along_rows()) {
            (true, _) => ScatterWrite::AddMostlyOnce,
            (false, true) => ScatterWrite::AddAlongRuns,
            (false, false) => ScatterWrite::Add,
        };
        kernels::indexed::scatter(sides, grad_output.data(), indices.data(), grad_input, write)
    }

    /// Double backward from saved indices: `grad_grad_output[o] = grad_grad_input[index[o]]`
    /// (PyTorch's `max_pool_double_backward`).
    pub fn double_backward_with_indices<T: Element>(
        &self,
        grad_grad_input: &TensorView<'_, T>,
        indices: &TensorView<'_, i64>,
    ) -> Result<Tensor<T>> {
        let plan = self.windows.plan(grad_grad_input.shape())?;
        let layout = grad_grad_input.layout();
        plan.expect_output("indices", indices, layout)?;
        let sides = plan.sides(grad_grad_input.shape(), layout);
        let mut out = zeroed::<T>(&plan.output)?;
        kernels::indexed::gather(sides, grad_grad_input.data(), indices.data(), &mut out)?;
        Tensor::new(out, plan.output, layout)
    }
}

impl Pooling for MaxPool {
    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        Ok(self.windows.plan(input)?.output)
    }

    fn forward<T: Element>(&self, x: &TensorView<'_, T>) -> Result<Tensor<T>> {
        Ok(self.forward_with_indices(x)?.output)
    }

    /// Backward with no saved indices: the argmax is recomputed from `x` with the
    /// forward's exact rule, so the result equals the indices-based backward.
    fn backward<T: Element>(&self, x: &TensorView<'_, T>, grad_output: &TensorView<'_, T>) -> Result<Tensor<T>> {
        let saved = self.forward_with_indices(x)?;
        self.backward_with_indices(x.shape(), grad_output, &saved.indices.view())
    }

    fn double_backward<T: Element>(
        &self,
        x: &TensorView<'_, T>,
        grad_grad_input: &TensorView<'_, T>,
    ) -> Result<Tensor<T>> {
        super::expect_shape("grad_grad_input", grad_grad_input, x.shape(), x.layout())?;
        let saved = self.forward_with_indices(x)?;
        self.double_backward_with_indices(grad_grad_input, &saved.indices.view())
    }
}

/// Converts PyTorch-format indices (flat index within each (n, c) plane) to ONNX's
/// `MaxPool` format: a flat index over the whole `(N, C, d1, ..., dk)` tensor, with the
/// spatial part row-major or column-major. `input_spatial` is the pooled input's spatial
/// shape. The result keeps the indices' shape and layout; -1 stays -1.
///
/// ```
/// use poolgrad::{indices_to_onnx, StorageOrder, Layout, Shape, Tensor};
/// let i = Tensor::new(vec![5i64, 6], Shape::new(1, 2, &[1, 1]), Layout::ChannelsFirst).unwrap();
/// let onnx = indices_to_onnx(&i.view(), &[2, 4], StorageOrder::RowMajor).unwrap();
/// assert_eq!(onnx.data(), &[5, 8 + 6]);
/// let col = indices_to_onnx(&i.view(), &[2, 4], StorageOrder::ColumnMajor).unwrap();
/// // (1, 1) -> 1 + 1·2 = 3; (1, 2) -> 1 + 2·2 = 5
/// assert_eq!(col.data(), &[3, 8 + 5]);
/// ```
pub fn indices_to_onnx(
    indices: &TensorView<'_, i64>,
    input_spatial: &[usize],
    order: StorageOrder,
) -> Result<Tensor<i64>> {
    let shape = indices.shape();
    if input_spatial.len() != shape.spatial.len() {
        return Err(PoolError::RankMismatch {
            name: "input_spatial",
            got: input_spatial.len(),
            spatial_dims: shape.spatial.len(),
        });
    }
    let plane = Shape::new(1, 1, input_spatial).numel()?;
    let total = shape.batch.checked_mul(shape.channels).and_then(|p| p.checked_mul(plane));
    if total.is_none_or(|t| t > i64::MAX as usize) {
        return Err(PoolError::Overflow { what: "ONNX index" });
    }
    let out_plane = shape.spatial_volume()?;
    let channels = shape.channels;
    let layout = indices.layout();
    let converted = indices
        .data()
        .iter()
        .enumerate()
        .map(|(p, &i)| {
            if i == -1 {
                return Ok(-1);
            }
            if i < 0 || i as u64 >= plane as u64 {
                return Err(PoolError::InvalidIndex { index: i, position: p, plane_size: plane });
            }
            let plane_index = match layout {
                Layout::ChannelsFirst => p / out_plane,
                Layout::ChannelsLast => (p / (out_plane * channels)) * channels + p % channels,
            };
            let spatial = match order {
                StorageOrder::RowMajor => i as usize,
                StorageOrder::ColumnMajor => column_major(i as usize, input_spatial),
            };
            Ok((plane_index * plane + spatial) as i64)
        })
        .collect::<Result<Vec<i64>>>()?;
    Tensor::new(converted, shape.clone(), layout)
}

/// Re-flattens a row-major flat index over `dims` in column-major order.
fn column_major(mut flat: usize, dims: &[usize]) -> usize {
    let mut coords = vec![0; dims.len()];
    for (c, &d) in coords.iter_mut().zip(dims).rev() {
        *c = flat % d;
        flat /= d;
    }
    coords.iter().zip(dims).rev().fold(0, |acc, (&c, &d)| acc * d + c)
}
