//! What an explanation shows, computed from the library: the input, the windows, the
//! output, the incoming gradient δ, the input gradient, and which output sent how much
//! gradient to which input cell.
//!
//! Contributions are read off the library itself: row `o` of the Jacobian is the
//! backward of a one-hot grad-output at `o`, so the picture shows exactly what poolgrad
//! computes (ties, divisors, padding and all), for every operator alike.

use crate::{ExplainError, Result};
use poolgrad::geometry::adaptive_window;
use poolgrad::{Layout, Shape, Tensor, WindowSpec};
use poolgrad::{Operator, Pooling};

/// How a contribution is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    /// `δ` at the argmax, 0 elsewhere.
    Max,
    /// `δ / divisor`.
    Avg,
    /// `δ · ∂y/∂x`.
    Lp,
}

/// Drawing limits: beyond them the grids stop being legible.
pub const MAX_SIDE: usize = 16;
pub const MAX_SLICES: usize = 8;
pub const MAX_OUTPUTS: usize = 64;

/// One spatial axis, normalised: input length, padding, and for each output index the
/// coordinates of its window's taps (padding included, the ceil overhang excluded).
#[derive(Debug, Clone)]
pub struct Axis {
    pub input: usize,
    pub pad_begin: usize,
    pub pad_end: usize,
    pub taps: Vec<Vec<i64>>,
}

impl Axis {
    fn trivial() -> Self {
        Axis { input: 1, pad_begin: 0, pad_end: 0, taps: vec![vec![0]] }
    }
    pub fn output(&self) -> usize {
        self.taps.len()
    }
}

/// Everything the terminal and the pictures show, on one (n, c) plane, with the spatial
/// dims normalised to three `(slices, rows, cols)`: 1-D is `(1, 1, W)`, 2-D `(1, H, W)`.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub title: String,
    pub formula: Formula,
    /// The original number of spatial dims (1, 2 or 3), for index names.
    pub rank: usize,
    /// Slices, rows, cols.
    pub axes: [Axis; 3],
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub delta: Vec<f64>,
    pub grad: Vec<f64>,
    /// `jacobian[o][i] = ∂y_o / ∂x_i`.
    pub jacobian: Vec<Vec<f64>>,
}

impl Explanation {
    pub fn in_dims(&self) -> [usize; 3] {
        [self.axes[0].input, self.axes[1].input, self.axes[2].input]
    }

    pub fn out_dims(&self) -> [usize; 3] {
        [self.axes[0].output(), self.axes[1].output(), self.axes[2].output()]
    }

    /// `(slice, row, col)` of a flat index over `dims`.
    pub fn unflat(flat: usize, dims: [usize; 3]) -> [usize; 3] {
        [flat / (dims[1] * dims[2]), (flat / dims[2]) % dims[1], flat % dims[2]]
    }

    /// `[i][j]`-style name of a flat index, in the original rank.
    pub fn index_name(&self, flat: usize, output: bool) -> String {
        let dims = if output { self.out_dims() } else { self.in_dims() };
        let [s, r, c] = Self::unflat(flat, dims);
        match self.rank {
            1 => format!("[{c}]"),
            2 => format!("[{r}][{c}]"),
            _ => format!("[{s}][{r}][{c}]"),
        }
    }

    /// The contributions to input cell `i`: `(output, ∂y_o/∂x_i)`, non-zero ones only.
    pub fn contributions(&self, i: usize) -> Vec<(usize, f64)> {
        self.jacobian.iter().enumerate().filter(|(_, row)| row[i] != 0.0).map(|(o, row)| (o, row[i])).collect()
    }

    /// One term of a gradient sum, as text: `δ[u][v]`, `δ[u][v]/9`, `δ[u][v]·0.53`.
    pub fn term(&self, o: usize, coefficient: f64) -> String {
        let name = format!("δ{}", self.index_name(o, true));
        let divisor = 1.0 / coefficient;
        match self.formula {
            _ if coefficient == 1.0 => name,
            Formula::Avg | Formula::Max if (divisor - divisor.round()).abs() < 1e-9 => {
                format!("{name}/{}", divisor.round())
            }
            _ => format!("{name}·{}", number(coefficient)),
        }
    }

    /// The window taps of output `o` as `(slice, row, col)` in input coordinates
    /// (possibly in the padding).
    pub fn window_taps(&self, o: usize) -> Vec<[i64; 3]> {
        let [a, b, c] = Self::unflat(o, self.out_dims());
        let mut taps = Vec::new();
        for &s in &self.axes[0].taps[a] {
            for &r in &self.axes[1].taps[b] {
                for &q in &self.axes[2].taps[c] {
                    taps.push([s, r, q]);
                }
            }
        }
        taps
    }
}

/// A number as the grids print it: integers plainly, others to 3 decimals.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// The per-dim windows of an operator over `spatial`.
fn axes_of(op: &Operator, spatial: &[usize]) -> Result<Vec<Axis>> {
    Ok(match op.windows() {
        WindowSpec::Regular(g) => g
            .resolve(spatial)?
            .iter()
            .map(|a| {
                let (lo, hi) = (-(a.pad_begin as i64), (a.input + a.pad_end) as i64);
                let taps = (0..a.output)
                    .map(|o| {
                        let start = a.window_start(o) as i64;
                        (0..a.kernel as i64)
                            .map(|j| start + j * a.dilation as i64)
                            .filter(|&c| c >= lo && c < hi)
                            .collect()
                    })
                    .collect();
                Axis { input: a.input, pad_begin: a.pad_begin, pad_end: a.pad_end, taps }
            })
            .collect(),
        WindowSpec::Adaptive(sizes) => spatial
            .iter()
            .zip(sizes.expand("output_size", spatial.len())?)
            .map(|(&i, o)| {
                let taps = (0..o)
                    .map(|k| {
                        let (s, e) = adaptive_window(k, i, o);
                        (s as i64..e as i64).collect()
                    })
                    .collect();
                Axis { input: i, pad_begin: 0, pad_end: 0, taps }
            })
            .collect(),
        WindowSpec::Global => spatial
            .iter()
            .map(|&i| Axis { input: i, pad_begin: 0, pad_end: 0, taps: vec![(0..i as i64).collect()] })
            .collect(),
    })
}

/// Builds the explanation of `op` on one plane `x` (spatial shape `spatial`) with the
/// incoming gradient `delta` (`None`: all ones).
pub fn explain(
    op: &Operator,
    title: String,
    spatial: &[usize],
    x: Vec<f64>,
    delta: Option<Vec<f64>>,
) -> Result<Explanation> {
    let rank = spatial.len();
    if !(1..=3).contains(&rank) {
        return Err(ExplainError::Unsupported(format!(
            "explain draws 1-D, 2-D and 3-D inputs; this one has {rank} spatial dims"
        )));
    }
    let sides = &spatial[rank.saturating_sub(2)..];
    let slices = if rank == 3 { spatial[0] } else { 1 };
    if sides.iter().any(|&s| s > MAX_SIDE) || slices > MAX_SLICES {
        return Err(ExplainError::Unsupported(format!(
            "input too large to draw legibly: spatial shape {spatial:?} (limit {MAX_SIDE} per side, {MAX_SLICES} slices for 3-D)"
        )));
    }
    let shape = Shape::new(1, 1, spatial);
    let xt = Tensor::new(x, shape.clone(), Layout::ChannelsFirst)?;
    let y = op.forward(&xt.view())?;
    let outputs = y.data().len();
    if outputs > MAX_OUTPUTS {
        return Err(ExplainError::Unsupported(format!(
            "output too large to draw legibly: {outputs} cells (limit {MAX_OUTPUTS})"
        )));
    }
    let delta = match delta {
        Some(d) if d.len() == outputs => d,
        Some(d) => {
            return Err(ExplainError::Unsupported(format!(
                "the grad-output plane has {} values, the output {outputs}",
                d.len()
            )))
        }
        None => vec![1.0; outputs],
    };
    let dt = Tensor::new(delta.clone(), y.shape().clone(), Layout::ChannelsFirst)?;
    let grad = op.backward(&xt.view(), &dt.view())?;
    let jacobian = (0..outputs)
        .map(|o| {
            let mut e = vec![0.0; outputs];
            e[o] = 1.0;
            let e = Tensor::new(e, y.shape().clone(), Layout::ChannelsFirst)?;
            Ok(op.backward(&xt.view(), &e.view())?.into_data())
        })
        .collect::<Result<Vec<_>>>()?;
    let mut axes = axes_of(op, spatial)?;
    while axes.len() < 3 {
        axes.insert(0, Axis::trivial());
    }
    let [a0, a1, a2]: [Axis; 3] = axes.try_into().map_err(|_| ExplainError::Unsupported("rank".into()))?;
    let formula = match op {
        Operator::Max(_) => Formula::Max,
        Operator::Avg(_) => Formula::Avg,
        Operator::Lp(_) => Formula::Lp,
    };
    Ok(Explanation {
        title,
        formula,
        rank,
        axes: [a0, a1, a2],
        x: xt.into_data(),
        y: y.into_data(),
        delta,
        grad: grad.into_data(),
        jacobian,
    })
}

/// Plane `(n, c)` of a tensor's data (logical shape `shape`, stored in `layout`), in
/// row-major spatial order: the input to [`explain`].
///
/// ```
/// use poolgrad::{Layout, Shape};
/// let shape = Shape::new(1, 2, &[2]);
/// // Channels-last storage of two channels over two cells: c0 = [1, 3], c1 = [2, 4].
/// assert_eq!(poolgrad_explain::plane(&[1.0, 2.0, 3.0, 4.0], &shape, Layout::ChannelsLast, 0, 1), vec![2.0, 4.0]);
/// ```
pub fn plane(data: &[f64], shape: &Shape, layout: Layout, n: usize, c: usize) -> Vec<f64> {
    let volume: usize = shape.spatial.iter().product();
    (0..volume)
        .map(|s| match layout {
            Layout::ChannelsFirst => data[(n * shape.channels + c) * volume + s],
            Layout::ChannelsLast => data[(n * volume + s) * shape.channels + c],
        })
        .collect()
}

/// The small integers (0 to 9, ties included) of a generated input for `seed`, in C
/// order: `poolgrad explain --seed S` and Python's `poolgrad.explain(seed=S)` draw the
/// same input from them.
///
/// ```
/// let v: Vec<f64> = poolgrad_explain::seeded_values(7).take(4).collect();
/// assert!(v.iter().all(|&x| (0.0..10.0).contains(&x) && x == x.trunc()));
/// ```
pub fn seeded_values(seed: u64) -> impl Iterator<Item = f64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) % 10) as f64
    })
}
