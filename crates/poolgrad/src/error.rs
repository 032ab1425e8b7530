//! The one error type of the library.

use thiserror::Error;

/// Everything that can go wrong in a pooling request.
///
/// Every public function validates its arguments up front and returns one of these
/// instead of panicking; the message names the parameter, the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A parameter has a value outside its domain (a zero kernel, a zero divisor, ...).
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The parameter, with the PyTorch name where there is one (`kernel_size`, `stride`, ...).
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A per-dimension parameter has neither one value nor one value per spatial dim.
    #[error("{name} has {got} values but the input has {spatial_dims} spatial dims (give 1 or {spatial_dims})")]
    RankMismatch {
        /// The parameter.
        name: &'static str,
        /// How many values it has.
        got: usize,
        /// How many spatial dims the input has.
        spatial_dims: usize,
    },
    /// The configuration leaves no output in some spatial dim.
    #[error(
        "output would be empty in spatial dim {dim}: padded input length {padded_input} is smaller \
         than the effective (dilated) kernel {effective_kernel}"
    )]
    EmptyOutput {
        /// The spatial dim (0-based).
        dim: usize,
        /// Input length plus both pads.
        padded_input: u128,
        /// `dilation * (kernel - 1) + 1`.
        effective_kernel: u128,
    },
    /// A tensor's shape does not fit the request.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Which tensor.
        what: &'static str,
        /// The shape it must have.
        expected: Vec<usize>,
        /// The shape it has.
        got: Vec<usize>,
    },
    /// A tensor has too few dims or a zero-length spatial dim.
    #[error("{what}: {reason}")]
    InvalidShape {
        /// Which tensor.
        what: &'static str,
        /// What is wrong with its shape.
        reason: String,
    },
    /// A buffer's length does not match its shape.
    #[error("{what}: shape {shape:?} needs {expected} elements but the buffer has {got}")]
    DataLength {
        /// Which tensor.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements the buffer has.
        got: usize,
    },
    /// The allocator could not provide an output buffer.
    #[error("out of memory: could not allocate {bytes} bytes for {what}")]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Its size in bytes.
        bytes: usize,
    },
    /// A size computation would overflow `usize`.
    #[error("size overflow while computing {what}")]
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
    /// A saved compact argmax (a window-local tap number) does not name a tap of its window.
    #[error("invalid argmax tap {tap} at output element {position}: its window has {window_taps} valid taps")]
    InvalidTap {
        /// The offending tap number.
        tap: u8,
        /// Flat position of the output element.
        position: usize,
        /// Valid taps of that window.
        window_taps: usize,
    },
    /// A saved argmax index does not point into its plane.
    #[error("invalid max index {index} at output element {position}: must be -1 or in [0, {plane_size})")]
    InvalidIndex {
        /// The offending index.
        index: i64,
        /// Flat position of the offending element in the indices tensor.
        position: usize,
        /// The number of cells in one spatial plane.
        plane_size: usize,
    },
    /// A check inside the library failed: a bug in poolgrad, reported instead of a wrong
    /// result.
    #[error("internal error: {what} (a bug in poolgrad; please report it)")]
    Internal {
        /// What went wrong.
        what: &'static str,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = PoolError> = std::result::Result<T, E>;
