//! # poolgrad-explain
//!
//! Pictures of where every gradient of a pooling layer goes, computed from [poolgrad]
//! itself: the forward (every window outlined in its output's colour, padding shown as
//! such, argmax dots) and the backward (δ, and in every input cell its gradient with the
//! terms it sums). The same [`Explanation`] is drawn for a terminal ([`terminal`]), as
//! SVG ([`svg`]) and as PNG ([`png`], pure Rust with an embedded font). The CLI's
//! `poolgrad explain` and `demo` and Python's `poolgrad.explain` draw through this crate,
//! so they draw the same pictures.
//!
//! ```
//! use poolgrad::{MaxPool, Operator, PoolGeometry, Padding};
//! let op = Operator::Max(MaxPool::new(PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]))));
//! let x: Vec<f64> = (0..25).map(|v| ((v * 7) % 10) as f64).collect();
//! let ex = poolgrad_explain::explain(&op, "max pooling".into(), &[5, 5], x, None)?;
//! // Every one of the 9 outputs sends its δ = 1 to exactly one input cell.
//! assert_eq!(ex.grad.iter().sum::<f64>(), 9.0);
//! let picture = poolgrad_explain::svg::backward(&ex);
//! assert!(picture.starts_with("<svg"));
//! # Ok::<(), poolgrad_explain::ExplainError>(())
//! ```

pub mod model;
pub mod palette;
pub mod png;
pub mod svg;
pub mod terminal;

pub use model::{explain, plane, seeded_values, Explanation, Formula};

/// Why an explanation could not be made or drawn.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The operator refused the request (its geometry, shapes or values).
    #[error(transparent)]
    Pool(#[from] poolgrad::PoolError),
    /// The request is valid but cannot be drawn legibly, or its parts do not fit
    /// together (rank, sizes, the grad-output plane).
    #[error("{0}")]
    Unsupported(String),
    /// Rendering the picture failed.
    #[error("{0}")]
    Render(String),
}

/// The result of this crate's functions.
pub type Result<T> = std::result::Result<T, ExplainError>;
