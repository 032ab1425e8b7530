//! Window geometry: output sizes, padding modes and the window of every output index.
//!
//! All the arithmetic of "where does each pooling window sit" lives here, per spatial dim,
//! and nowhere else. Operators combine one [`AxisGeometry`] per spatial dim with a
//! reduction; kernels read the windows from here.
//!
//! One spatial dim, input length `I = 5`, kernel `K = 3`, stride `S = 2`, padding 1 on
//! each side (`·` is padding, which is never read as a value):
//!
//! ```text
//!  coordinate   -1   0   1   2   3   4   5
//!                ·   x0  x1  x2  x3  x4  ·
//!  window 0     [-1 ......... 1]                 taps -1, 0, 1   (valid: 0, 1)
//!  window 1             [1 ......... 3]          taps  1, 2, 3
//!  window 2                     [3 ......... 5]  taps  3, 4, 5   (valid: 3, 4)
//! ```
//!
//! With dilation `D` the taps of window `o` are `o·S − pad_begin + j·D` for `j < K`, so the
//! effective kernel is `D·(K − 1) + 1`. Under `ceil_mode` a last, partial window is kept
//! only if it starts inside the input or the begin padding (PyTorch's rule, also ONNX's).
//!
//! ```
//! use poolgrad::geometry::{PoolGeometry, Padding};
//! let g = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]));
//! let axes = g.resolve(&[5]).unwrap();
//! assert_eq!(axes[0].output, 3);
//! assert_eq!(g.output_spatial(&[112, 112]).unwrap(), vec![56, 56]);
//! ```

use crate::error::{PoolError, Result};

/// How the spatial dims are padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding (the default).
    #[default]
    None,
    /// The same padding at both ends of each dim (PyTorch's `padding`): one value for
    /// every dim, or one per dim.
    Symmetric(Vec<usize>),
    /// Begin and end padding per dim (ONNX's `pads`, split into its two halves); each
    /// half holds one value for every dim, or one per dim.
    Explicit {
        /// Padding before each dim's first element.
        begin: Vec<usize>,
        /// Padding after each dim's last element.
        end: Vec<usize>,
    },
    /// ONNX `SAME_UPPER`: output `ceil(I / S)`, the odd padding cell at the end.
    SameUpper,
    /// ONNX `SAME_LOWER`: output `ceil(I / S)`, the odd padding cell at the beginning.
    SameLower,
    /// ONNX `VALID`: no padding.
    Valid,
}

/// A per-dim parameter as the caller wrote it: one value for every spatial dim, or one
/// value per dim (PyTorch's `kernel_size=3` and `kernel_size=(3, 3)`).
///
/// Its values can only be read through [`PerDim::expand`], which needs the rank: code can
/// never take the one number of `kernel_size=3` for the value of a single dim (a kernel
/// volume of 3 instead of 9, say). Expansion happens in this module and nowhere else.
///
/// ```
/// use poolgrad::geometry::PerDim;
/// assert_eq!(PerDim::new(&[3]).expand("kernel_size", 2).unwrap(), vec![3, 3]);
/// assert_eq!(PerDim::new(&[3, 2]).expand("kernel_size", 2).unwrap(), vec![3, 2]);
/// assert!(PerDim::new(&[3, 2]).expand("kernel_size", 3).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerDim(Vec<usize>);

impl PerDim {
    /// The parameter from its values as written: one (every dim) or one per dim.
    pub fn new(values: &[usize]) -> Self {
        PerDim(values.to_vec())
    }

    /// The values for an input with `rank` spatial dims; `name` names the parameter in
    /// the error when the count is neither 1 nor `rank`.
    pub fn expand(&self, name: &'static str, rank: usize) -> Result<Vec<usize>> {
        per_dim(name, &self.0, rank)
    }
}

impl From<&[usize]> for PerDim {
    fn from(values: &[usize]) -> Self {
        PerDim::new(values)
    }
}

/// The window geometry of a pooling layer, before it meets an input.
///
/// Per-dim parameters take one value (applied to every spatial dim) or one value per dim.
/// Defaults follow PyTorch: stride = kernel, dilation 1, no padding, floor mode. The
/// parameters are private: what operators and kernels see is the resolved per-dim
/// geometry ([`PoolGeometry::resolve`]), never a list as the caller wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Window size per spatial dim (`kernel_size`).
    kernel_size: PerDim,
    /// Step between windows (`stride`); `None` means "equal to the kernel".
    stride: Option<PerDim>,
    /// Distance between taps (`dilation`).
    dilation: PerDim,
    /// Padding (`padding`, ONNX `pads` or `auto_pad`).
    padding: Padding,
    /// Round the output size up instead of down (`ceil_mode`).
    ceil_mode: bool,
}

impl PoolGeometry {
    /// A geometry with the given kernel and PyTorch's defaults for everything else.
    pub fn new(kernel_size: &[usize]) -> Self {
        PoolGeometry {
            kernel_size: PerDim::new(kernel_size),
            stride: None,
            dilation: PerDim::new(&[1]),
            padding: Padding::None,
            ceil_mode: false,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: &[usize]) -> Self {
        self.stride = Some(PerDim::new(stride));
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: &[usize]) -> Self {
        self.dilation = PerDim::new(dilation);
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Sets ceil mode.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Whether some dim is padded (any non-zero `padding` or `pads`, or SAME auto-padding,
    /// whatever the input) or dilated: the geometries PyTorch's LP pooling refuses.
    ///
    /// ```
    /// use poolgrad::{Padding, PoolGeometry};
    /// assert!(!PoolGeometry::new(&[2]).padding(Padding::Symmetric(vec![0])).is_padded_or_dilated());
    /// assert!(PoolGeometry::new(&[2]).dilation(&[1, 2]).is_padded_or_dilated());
    /// assert!(PoolGeometry::new(&[2]).padding(Padding::SameUpper).is_padded_or_dilated());
    /// ```
    pub fn is_padded_or_dilated(&self) -> bool {
        let padded = match &self.padding {
            Padding::None | Padding::Valid => false,
            Padding::Symmetric(p) => p.iter().any(|&v| v != 0),
            Padding::Explicit { begin, end } => begin.iter().chain(end).any(|&v| v != 0),
            Padding::SameUpper | Padding::SameLower => true,
        };
        padded || self.dilation.0.iter().any(|&d| d != 1)
    }

    /// The output's spatial shape for an input of the given spatial shape.
    pub fn output_spatial(&self, input_spatial: &[usize]) -> Result<Vec<usize>> {
        Ok(self.resolve(input_spatial)?.iter().map(|a| a.output).collect())
    }

    /// Checks the geometry against an input's spatial shape and returns one resolved
    /// [`AxisGeometry`] per spatial dim.
    pub fn resolve(&self, input_spatial: &[usize]) -> Result<Vec<AxisGeometry>> {
        let rank = input_spatial.len();
        if rank == 0 {
            return Err(PoolError::InvalidShape { what: "input", reason: "needs at least one spatial dim".into() });
        }
        let kernel = self.kernel_size.expand("kernel_size", rank)?;
        let stride = match &self.stride {
            Some(s) => s.expand("stride", rank)?,
            None => kernel.clone(),
        };
        let dilation = self.dilation.expand("dilation", rank)?;
        for (name, values) in [("kernel_size", &kernel), ("stride", &stride), ("dilation", &dilation)] {
            if let Some(d) = values.iter().position(|&v| v == 0) {
                return Err(PoolError::InvalidParameter {
                    name,
                    reason: format!("value 0 in spatial dim {d}; every value must be >= 1"),
                });
            }
        }
        if let Some(d) = input_spatial.iter().position(|&v| v == 0) {
            return Err(PoolError::InvalidShape { what: "input", reason: format!("spatial dim {d} has length 0") });
        }
        let same = match &self.padding {
            Padding::SameUpper => Some(true),
            Padding::SameLower => Some(false),
            _ => None,
        };
        if self.ceil_mode && matches!(self.padding, Padding::SameUpper | Padding::SameLower | Padding::Valid) {
            return Err(PoolError::InvalidParameter {
                name: "ceil_mode",
                reason: "cannot be combined with auto_pad (SAME_UPPER, SAME_LOWER, VALID)".into(),
            });
        }
        let (pad_begin, pad_end) = match &self.padding {
            Padding::None | Padding::Valid | Padding::SameUpper | Padding::SameLower => (vec![0; rank], vec![0; rank]),
            Padding::Symmetric(p) => {
                let p = per_dim("padding", p, rank)?;
                (p.clone(), p)
            }
            Padding::Explicit { begin, end } => (per_dim("pads", begin, rank)?, per_dim("pads", end, rank)?),
        };
        (0..rank)
            .map(|d| {
                let base = AxisGeometry {
                    input: input_spatial[d],
                    kernel: kernel[d],
                    stride: stride[d],
                    dilation: dilation[d],
                    pad_begin: pad_begin[d],
                    pad_end: pad_end[d],
                    output: 0,
                };
                match same {
                    Some(upper) => base.with_same_padding(d, upper),
                    None => base.with_output(d, self.ceil_mode),
                }
            })
            .collect()
    }
}

/// Expands a per-dim parameter: one value for every dim, or exactly one per dim.
fn per_dim(name: &'static str, values: &[usize], rank: usize) -> Result<Vec<usize>> {
    match values.len() {
        1 => Ok(vec![values[0]; rank]),
        n if n == rank => Ok(values.to_vec()),
        got => Err(PoolError::RankMismatch { name, got, spatial_dims: rank }),
    }
}

/// The resolved geometry of one spatial dim: every number a kernel needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisGeometry {
    /// Input length.
    pub input: usize,
    /// Kernel length (taps per window).
    pub kernel: usize,
    /// Step between window starts.
    pub stride: usize,
    /// Step between taps.
    pub dilation: usize,
    /// Padding before the first element.
    pub pad_begin: usize,
    /// Padding after the last element.
    pub pad_end: usize,
    /// Number of windows (output length).
    pub output: usize,
}

fn overflow(what: &'static str) -> PoolError {
    PoolError::Overflow { what }
}

impl AxisGeometry {
    /// `dilation · (kernel − 1) + 1`, the span of one window.
    pub fn effective_kernel(&self) -> Result<usize> {
        (self.kernel - 1).checked_mul(self.dilation).and_then(|v| v.checked_add(1)).ok_or(overflow("effective kernel"))
    }

    /// Computes the output length from explicit pads (PyTorch's and ONNX's formula,
    /// with the ceil-mode start rule).
    fn with_output(mut self, dim: usize, ceil_mode: bool) -> Result<Self> {
        let ke = self.effective_kernel()?;
        let padded = self
            .input
            .checked_add(self.pad_begin)
            .and_then(|v| v.checked_add(self.pad_end))
            .ok_or(overflow("padded input length"))?;
        // O = floor((padded - Ke [+ S - 1 in ceil mode]) / S) + 1, rounding toward -inf:
        // in ceil mode a window wider than the padded input still gives one output.
        let stride = self.stride as i128;
        let numerator = padded as i128 - ke as i128 + if ceil_mode { stride - 1 } else { 0 };
        let mut output = numerator.div_euclid(stride) + 1;
        // Ceil mode: the last window must start inside the input or the begin padding.
        if ceil_mode && output >= 1 && (output - 1) * stride >= (self.input + self.pad_begin) as i128 {
            output -= 1;
        }
        if output < 1 {
            return Err(PoolError::EmptyOutput { dim, padded_input: padded as u128, effective_kernel: ke as u128 });
        }
        self.output = usize::try_from(output).map_err(|_| overflow("output length"))?;
        Ok(self)
    }

    /// ONNX `SAME_UPPER` / `SAME_LOWER`: output `ceil(I / S)` and the pads that give it.
    fn with_same_padding(mut self, _dim: usize, upper: bool) -> Result<Self> {
        let ke = self.effective_kernel()?;
        let out = self.input.div_ceil(self.stride);
        let needed =
            (out - 1).checked_mul(self.stride).and_then(|v| v.checked_add(ke)).ok_or(overflow("SAME padding"))?;
        let total = needed.saturating_sub(self.input);
        let (small, large) = (total / 2, total - total / 2);
        (self.pad_begin, self.pad_end) = if upper { (small, large) } else { (large, small) };
        self.output = out;
        Ok(self)
    }

    /// The coordinate of window `o`'s first tap (may be negative: padding).
    pub fn window_start(&self, o: usize) -> i128 {
        o as i128 * self.stride as i128 - self.pad_begin as i128
    }

    /// The taps of window `o` that fall inside the input, in increasing order, as
    /// `(tap position j in 0..kernel, input coordinate)`.
    pub fn valid_taps(&self, o: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let start = self.window_start(o);
        let (dil, input) = (self.dilation as i128, self.input as i128);
        // First tap with a coordinate >= 0, last tap with a coordinate < input.
        let first = if start >= 0 { 0 } else { ((-start) + dil - 1) / dil };
        let last_excl = if start >= input { 0 } else { (input - start + dil - 1) / dil };
        let (first, last_excl) = (first.min(self.kernel as i128), last_excl.min(self.kernel as i128));
        (first..last_excl.max(first)).map(move |j| (j as usize, (start + j * dil) as usize))
    }

    /// The number of taps of window `o` that lie inside the input or its padding, not in
    /// the ceil-mode overhang past the end padding: the divisor of average pooling with
    /// `count_include_pad`.
    pub fn padded_tap_count(&self, o: usize) -> usize {
        let start = self.window_start(o);
        let limit = self.input as i128 + self.pad_end as i128;
        if start >= limit {
            return 0;
        }
        let n = (limit - start + self.dilation as i128 - 1) / self.dilation as i128;
        n.min(self.kernel as i128) as usize
    }

    /// The number of taps of window `o` inside the input.
    pub fn valid_tap_count(&self, o: usize) -> usize {
        self.valid_taps(o).count()
    }
}

/// The window of output `i` of adaptive pooling from `input` cells to `output` cells:
/// `[floor(i·I/O), ceil((i+1)·I/O))`, in exact integer arithmetic (PyTorch's formula;
/// windows vary in size and neighbours may share a cell).
///
/// ```
/// use poolgrad::geometry::adaptive_window;
/// assert_eq!((0..3).map(|i| adaptive_window(i, 5, 3)).collect::<Vec<_>>(), vec![(0, 2), (1, 4), (3, 5)]);
/// assert_eq!(adaptive_window(3, 2, 5), (1, 2)); // output larger than input: cells repeat
/// ```
pub fn adaptive_window(i: usize, input: usize, output: usize) -> (usize, usize) {
    let (i, input, output) = (i as u128, input as u128, output as u128);
    let start = (i * input) / output;
    let end = ((i + 1) * input).div_ceil(output);
    (start as usize, end as usize)
}

/// The window starts of PyTorch's fractional max pooling along one dim, for the sample
/// `u` in [0, 1): `α = (I − K)/(O − 1)`, `start_i = ⌊(i + u)·α⌋ − ⌊u·α⌋` for `i < O − 1`,
/// and the last window ends at the input's end. Every window has `K` cells. Computed in
/// the precision of `u`'s type with one rounding per operation, as PyTorch computes it
/// in the input's dtype.
///
/// ```
/// use poolgrad::geometry::fractional_starts;
/// // α = 7/3: starts ⌊(i + ½)·α⌋ − ⌊½·α⌋ = 0, 2, 4, then I − K = 7
/// assert_eq!(fractional_starts(10, 4, 3, 0.5f32).unwrap(), vec![0, 2, 4, 7]);
/// ```
pub fn fractional_starts<T: crate::Element>(input: usize, output: usize, kernel: usize, u: T) -> Result<Vec<usize>> {
    if kernel == 0 || output == 0 {
        return Err(PoolError::InvalidParameter {
            name: "fractional max pooling",
            reason: format!("kernel {kernel} and output {output} must be >= 1"),
        });
    }
    if output.checked_add(kernel - 1).is_none_or(|need| need > input) {
        return Err(PoolError::InvalidParameter {
            name: "output_size",
            reason: format!("output {output} + kernel {kernel} - 1 exceeds the input length {input}"),
        });
    }
    let round = |v: T::Acc| T::from_acc(v).to_acc();
    let count = |n: usize| round(T::count(n));
    let mut starts = vec![input - kernel; output];
    if output > 1 {
        let alpha = round(count(input - kernel) / count(output - 1));
        let u = u.to_acc();
        let base = round(u * alpha);
        for (i, s) in starts.iter_mut().enumerate().take(output - 1) {
            let v = round(round(count(i) + u) * alpha);
            // Truncation toward zero, then the difference, as C++ `int` casts do.
            let (a, b) = (
                num_traits::ToPrimitive::to_i64(&num_traits::Float::trunc(v)),
                num_traits::ToPrimitive::to_i64(&num_traits::Float::trunc(base)),
            );
            let start = a.zip(b).map(|(a, b)| a - b).filter(|&d| d >= 0 && (d as usize) + kernel <= input);
            *s = start.ok_or_else(|| PoolError::InvalidParameter {
                name: "random_samples",
                reason: format!("sample {:?} puts window {i} outside the input", u),
            })? as usize;
        }
    }
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(input: usize, kernel: usize, stride: usize, pad: usize, dilation: usize, ceil: bool) -> AxisGeometry {
        PoolGeometry::new(&[kernel])
            .stride(&[stride])
            .padding(Padding::Symmetric(vec![pad]))
            .dilation(&[dilation])
            .ceil_mode(ceil)
            .resolve(&[input])
            .unwrap()[0]
    }

    #[test]
    fn worked_examples_from_the_research_note() {
        assert_eq!(axis(5, 2, 2, 1, 1, true).output, 3);
        assert_eq!(axis(6, 1, 2, 0, 1, true).output, 3);
        assert_eq!(axis(4, 3, 2, 0, 1, true).output, 2);
        assert_eq!(axis(2, 3, 3, 1, 1, true).output, 1);
        assert_eq!(axis(112, 3, 2, 1, 1, false).output, 56);
    }

    #[test]
    fn same_padding_puts_the_odd_cell_where_asked() {
        let upper = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::SameUpper).resolve(&[6]).unwrap()[0];
        assert_eq!((upper.pad_begin, upper.pad_end, upper.output), (0, 1, 3));
        let lower = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::SameLower).resolve(&[6]).unwrap()[0];
        assert_eq!((lower.pad_begin, lower.pad_end, lower.output), (1, 0, 3));
        let dilated =
            PoolGeometry::new(&[3]).stride(&[2]).dilation(&[2]).padding(Padding::SameUpper).resolve(&[6]).unwrap()[0];
        assert_eq!((dilated.pad_begin, dilated.pad_end), (1, 2));
    }

    #[test]
    fn taps_and_counts() {
        let a = axis(5, 3, 2, 1, 1, false);
        assert_eq!(a.valid_taps(0).collect::<Vec<_>>(), vec![(1, 0), (2, 1)]);
        assert_eq!(a.valid_taps(2).collect::<Vec<_>>(), vec![(0, 3), (1, 4)]);
        assert_eq!(a.padded_tap_count(0), 3);
        // ceil overhang is not counted
        let c = axis(4, 3, 2, 0, 1, true);
        assert_eq!(c.padded_tap_count(1), 2);
        // dilation skipping the whole input: no valid tap
        let d = PoolGeometry::new(&[3])
            .stride(&[6])
            .dilation(&[2])
            .padding(Padding::Symmetric(vec![1]))
            .ceil_mode(true)
            .resolve(&[1])
            .unwrap()[0];
        assert_eq!(d.valid_taps(0).count(), 0);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = PoolGeometry::new(&[0]).resolve(&[4]).unwrap_err();
        assert!(e.to_string().contains("kernel_size"), "{e}");
        let e = PoolGeometry::new(&[5]).resolve(&[4]).unwrap_err();
        assert!(matches!(e, PoolError::EmptyOutput { .. }), "{e}");
        let e = PoolGeometry::new(&[2, 2, 2]).resolve(&[4, 4]).unwrap_err();
        assert!(matches!(e, PoolError::RankMismatch { .. }), "{e}");
        let e = PoolGeometry::new(&[usize::MAX]).dilation(&[2]).resolve(&[4]).unwrap_err();
        assert!(matches!(e, PoolError::Overflow { .. }), "{e}");
        let e = PoolGeometry::new(&[2]).padding(Padding::Symmetric(vec![usize::MAX])).resolve(&[4]).unwrap_err();
        assert!(matches!(e, PoolError::Overflow { .. }), "{e}");
    }
}
