//! Shapes, layouts, element types and the tensor types the operators take and return.

use crate::error::{PoolError, Result};
use std::fmt::Debug;
use std::str::FromStr;

/// Where the channel dim sits in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// `ncx`: `(N, C, d1, ..., dk)`, PyTorch's default (NCHW).
    #[default]
    ChannelsFirst,
    /// `nxc`: `(N, d1, ..., dk, C)`, channels last (NHWC).
    ChannelsLast,
}

impl Layout {
    /// The short name used by the CLI (`ncx` or `nxc`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::ChannelsFirst => "ncx",
            Layout::ChannelsLast => "nxc",
        }
    }
}

impl FromStr for Layout {
    type Err = PoolError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ncx" => Ok(Layout::ChannelsFirst),
            "nxc" => Ok(Layout::ChannelsLast),
            other => Err(PoolError::InvalidParameter {
                name: "layout",
                reason: format!("'{other}' is not one of ncx, nxc"),
            }),
        }
    }
}

/// The logical shape of a pooling tensor: batch, channels and spatial dims, whatever
/// the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    /// N.
    pub batch: usize,
    /// C.
    pub channels: usize,
    /// d1, ..., dk.
    pub spatial: Vec<usize>,
}

impl Shape {
    /// A shape from its parts.
    pub fn new(batch: usize, channels: usize, spatial: &[usize]) -> Self {
        Shape { batch, channels, spatial: spatial.to_vec() }
    }

    /// Reads a shape from dims as stored in `layout` (`(N, C, d..)` or `(N, d.., C)`).
    pub fn from_dims(dims: &[usize], layout: Layout) -> Result<Self> {
        if dims.len() < 3 {
            return Err(PoolError::InvalidShape {
                what: "input",
                reason: format!(
                    "shape {dims:?} has {} dims; pooling needs (N, C, d1, ...) with at least one spatial dim",
                    dims.len()
                ),
            });
        }
        let k = dims.len() - 2;
        Ok(match layout {
            Layout::ChannelsFirst => Shape::new(dims[0], dims[1], &dims[2..]),
            Layout::ChannelsLast => Shape::new(dims[0], dims[k + 1], &dims[1..=k]),
        })
    }

    /// The dims as stored in `layout`.
    pub fn dims(&self, layout: Layout) -> Vec<usize> {
        let mut d = Vec::with_capacity(self.spatial.len() + 2);
        d.push(self.batch);
        match layout {
            Layout::ChannelsFirst => {
                d.push(self.channels);
                d.extend_from_slice(&self.spatial);
            }
            Layout::ChannelsLast => {
                d.extend_from_slice(&self.spatial);
                d.push(self.channels);
            }
        }
        d
    }

    /// Cells in one spatial plane (product of the spatial dims), overflow-checked.
    pub fn spatial_volume(&self) -> Result<usize> {
        checked_product(&self.spatial, "spatial volume")
    }

    /// Elements in the tensor, overflow-checked.
    pub fn numel(&self) -> Result<usize> {
        self.spatial_volume()?
            .checked_mul(self.batch)
            .and_then(|v| v.checked_mul(self.channels))
            .ok_or(PoolError::Overflow { what: "element count" })
    }
}

pub(crate) fn checked_product(values: &[usize], what: &'static str) -> Result<usize> {
    values
        .iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .ok_or(PoolError::Overflow { what })
}

/// An element type max pooling can compare: the floats and the integers.
///
/// Comparisons follow PyTorch (`v > m || v.is_nan()`), never `f32::max`, which drops NaN.
pub trait MaxElement: Copy + PartialOrd + Debug + Send + Sync + bytemuck::Zeroable + 'static {
    /// The type's name as `numpy` spells it.
    const NAME: &'static str;
    /// The identity of max: `-inf` for floats, the minimum for integers.
    fn lowest() -> Self;
    /// Whether the value is NaN (never, for integers).
    fn is_nan(self) -> bool;
}

/// A floating-point element type: everything the differentiable operators compute in.
///
/// Implemented for `f32`, `f64`, and `half`'s `f16` and `bf16`. Sums run in the
/// accumulation type [`Element::Acc`] (`f32` for the half types, as PyTorch's `opmath`);
/// gradient scatters round to `Self` after each addition, as PyTorch's CPU kernels do.
pub trait Element: MaxElement {
    /// The type sums and powers are computed in.
    type Acc: num_traits::Float + Debug + Send + Sync + 'static;
    /// Widens to the accumulation type.
    fn to_acc(self) -> Self::Acc;
    /// Rounds from the accumulation type.
    fn from_acc(value: Self::Acc) -> Self;
    /// Zero.
    fn zero() -> Self {
        Self::from_acc(num_traits::Zero::zero())
    }
    /// `self + other`, rounded to `Self`.
    fn add(self, other: Self) -> Self {
        Self::from_acc(self.to_acc() + other.to_acc())
    }
    /// Converts from `f64`, rounding.
    fn from_f64(value: f64) -> Self {
        Self::from_acc(<Self::Acc as num_traits::NumCast>::from(value).unwrap_or_else(num_traits::Float::nan))
    }
    /// Converts to `f64` (exact for every type here).
    fn to_f64(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self.to_acc()).unwrap_or(f64::NAN)
    }
    /// A count (a window size) in the accumulation type.
    fn count(count: usize) -> Self::Acc {
        <Self::Acc as num_traits::NumCast>::from(count).unwrap_or_else(num_traits::Float::infinity)
    }
}

macro_rules! float_element {
    ($t:ty, $name:literal, $acc:ty, $to:expr, $from:expr) => {
        impl MaxElement for $t {
            const NAME: &'static str = $name;
            fn lowest() -> Self {
                <$t as num_traits::Float>::neg_infinity()
            }
            fn is_nan(self) -> bool {
                <$t as num_traits::Float>::is_nan(self)
            }
        }
        impl Element for $t {
            type Acc = $acc;
            #[inline(always)]
            fn to_acc(self) -> $acc {
                $to(self)
            }
            #[inline(always)]
            fn from_acc(value: $acc) -> Self {
                $from(value)
            }
        }
    };
}

float_element!(f32, "float32", f32, |v| v, |v| v);
float_element!(f64, "float64", f64, |v| v, |v| v);
float_element!(half::f16, "float16", f32, half::f16::to_f32, half::f16::from_f32);
float_element!(half::bf16, "bfloat16", f32, half::bf16::to_f32, half::bf16::from_f32);

macro_rules! int_element {
    ($t:ty, $name:literal) => {
        impl MaxElement for $t {
            const NAME: &'static str = $name;
            fn lowest() -> Self {
                <$t>::MIN
            }
            fn is_nan(self) -> bool {
                false
            }
        }
    };
}

int_element!(u8, "uint8");
int_element!(i8, "int8");
int_element!(i32, "int32");
int_element!(i64, "int64");

/// A borrowed tensor: a contiguous buffer, its logical shape and its layout.
///
/// ```
/// use poolgrad::{Layout, Shape, TensorView};
/// let data = [1.0f32, 2.0, 3.0, 4.0];
/// let x = TensorView::new(&data, Shape::new(1, 1, &[2, 2]), Layout::ChannelsFirst).unwrap();
/// assert_eq!(x.shape().spatial, vec![2, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct TensorView<'a, T> {
    data: &'a [T],
    shape: Shape,
    layout: Layout,
}

impl<'a, T> TensorView<'a, T> {
    /// Wraps `data`, checking that its length matches `shape`.
    pub fn new(data: &'a [T], shape: Shape, layout: Layout) -> Result<Self> {
        let expected = shape.numel()?;
        if data.len() != expected {
            return Err(PoolError::DataLength {
                what: "tensor",
                shape: shape.dims(layout),
                expected,
                got: data.len(),
            });
        }
        Ok(TensorView { data, shape, layout })
    }

    /// The elements in memory order.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// The logical shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The memory layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// An owned tensor, as the operators return it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor<T> {
    data: Vec<T>,
    shape: Shape,
    layout: Layout,
}

impl<T> Tensor<T> {
    /// Wraps `data`, checking that its length matches `shape`.
    pub fn new(data: Vec<T>, shape: Shape, layout: Layout) -> Result<Self> {
        let expected = shape.numel()?;
        if data.len() != expected {
            return Err(PoolError::DataLength {
                what: "tensor",
                shape: shape.dims(layout),
                expected,
                got: data.len(),
            });
        }
        Ok(Tensor { data, shape, layout })
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorView<'_, T> {
        TensorView { data: &self.data, shape: self.shape.clone(), layout: self.layout }
    }

    /// The elements in memory order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// The logical shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dims as stored (`(N, C, d..)` or `(N, d.., C)`).
    pub fn dims(&self) -> Vec<usize> {
        self.shape.dims(self.layout)
    }

    /// The memory layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// How a tensor's elements are grouped for the kernels: `blocks` contiguous blocks, each
/// holding `spatial` cells of `lanes` interleaved channels.
///
/// Channels-first is `N·C` blocks of 1 lane; channels-last is `N` blocks of `C` lanes.
/// Element (block `b`, spatial cell `s`, lane `l`) sits at `(b·spatial + s)·lanes + l`,
/// so one kernel serves both layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocking {
    pub blocks: usize,
    pub lanes: usize,
}

impl Blocking {
    pub fn of(shape: &Shape, layout: Layout) -> Self {
        match layout {
            Layout::ChannelsFirst => Blocking { blocks: shape.batch * shape.channels, lanes: 1 },
            Layout::ChannelsLast => Blocking { blocks: shape.batch, lanes: shape.channels },
        }
    }
}
