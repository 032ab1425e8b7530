//! Command-line arguments shared by `run` and `bench`, and their translation into
//! library operators.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use poolgrad::{AvgPool, Layout, LpFormula, LpPool, MaxPool, Operator, Padding, PoolGeometry};

/// The pooling operators of the CLI contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// Max pooling (PyTorch max_pool1d/2d/3d, ONNX MaxPool).
    Max,
    /// Average pooling (PyTorch avg_pool1d/2d/3d, ONNX AveragePool).
    Avg,
    /// LP pooling (PyTorch lp_pool1d/2d/3d where PyTorch accepts the geometry, ONNX LpPool otherwise).
    Lp,
    /// Adaptive max pooling (PyTorch adaptive_max_pool1d/2d/3d).
    AdaptiveMax,
    /// Adaptive average pooling (PyTorch adaptive_avg_pool1d/2d/3d).
    AdaptiveAvg,
    /// Global max pooling (ONNX GlobalMaxPool).
    GlobalMax,
    /// Global average pooling (ONNX GlobalAveragePool).
    GlobalAvg,
}

impl Op {
    /// Whether the op is one of the max ops (argmax indices, integer inputs).
    pub fn is_max(self) -> bool {
        matches!(self, Op::Max | Op::AdaptiveMax | Op::GlobalMax)
    }

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Max => "max",
            Op::Avg => "avg",
            Op::Lp => "lp",
            Op::AdaptiveMax => "adaptive-max",
            Op::AdaptiveAvg => "adaptive-avg",
            Op::GlobalMax => "global-max",
            Op::GlobalAvg => "global-avg",
        }
    }
}

/// ONNX `auto_pad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AutoPad {
    /// Output ceil(in / stride), the odd padding cell at the end.
    SameUpper,
    /// Output ceil(in / stride), the odd padding cell at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Which LP pooling definition applies (`--lp-formula`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LpFormulaArg {
    /// PyTorch's where PyTorch accepts the geometry (no padding, no dilation), else ONNX's.
    Auto,
    /// PyTorch's `lp_pool{1,2,3}d`: (Σ x^p)^(1/p) with x^p, not |x|^p.
    Torch,
    /// ONNX `LpPool`: (Σ |x|^p)^(1/p) over the valid taps.
    Onnx,
}

impl LpFormulaArg {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LpFormulaArg::Auto => "auto",
            LpFormulaArg::Torch => "torch",
            LpFormulaArg::Onnx => "onnx",
        }
    }
}

impl From<LpFormulaArg> for LpFormula {
    fn from(f: LpFormulaArg) -> LpFormula {
        match f {
            LpFormulaArg::Auto => LpFormula::Auto,
            LpFormulaArg::Torch => LpFormula::PyTorch,
            LpFormulaArg::Onnx => LpFormula::Onnx,
        }
    }
}

/// Memory layout of the tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LayoutArg {
    /// Channels first: (N, C, d1, ..., dk), PyTorch's default.
    #[default]
    Ncx,
    /// Channels last: (N, d1, ..., dk, C).
    Nxc,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Ncx => Layout::ChannelsFirst,
            LayoutArg::Nxc => Layout::ChannelsLast,
        }
    }
}

/// The operator and window flags (the same for `run` and `bench`).
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// Pooling operator.
    #[arg(long, value_enum)]
    pub op: Op,

    /// Window size per spatial dim; one number applies to every dim. Required for max,
    /// avg and lp. [PyTorch: kernel_size; ONNX: kernel_shape]
    #[arg(long, value_name = "K[,K...]", allow_hyphen_values = true)]
    pub kernel: Option<String>,

    /// Step between windows. [default: = kernel] [PyTorch: stride; ONNX: strides]
    #[arg(long, value_name = "S[,S...]", allow_hyphen_values = true)]
    pub stride: Option<String>,

    /// Symmetric zero-width padding per dim. [default: 0] [PyTorch: padding]
    #[arg(long, value_name = "P[,P...]", allow_hyphen_values = true)]
    pub padding: Option<String>,

    /// Asymmetric padding: begins then ends, 2k numbers (ONNX order), or one number for
    /// every begin and end. Excludes --padding. [ONNX: pads]
    #[arg(long, value_name = "B1,..,Bk,E1,..,Ek", allow_hyphen_values = true)]
    pub pads: Option<String>,

    /// ONNX auto_pad: output ceil(in / stride), the odd padding cell at the end
    /// (same-upper) or the beginning (same-lower); valid: no padding. Excludes --padding,
    /// --pads and --ceil-mode. [ONNX: auto_pad]
    #[arg(long, value_enum, value_name = "MODE")]
    pub auto_pad: Option<AutoPad>,

    /// Distance between window taps. [default: 1] [PyTorch: dilation; ONNX: dilations]
    #[arg(long, value_name = "D[,D...]", allow_hyphen_values = true)]
    pub dilation: Option<String>,

    /// Round the output size up; the last window must still start inside the input or
    /// the left padding. [default: off] [PyTorch: ceil_mode]
    #[arg(long)]
    pub ceil_mode: bool,

    /// avg: count padded cells in the divisor. [default: true, as PyTorch; ONNX's
    /// default is false] [PyTorch: count_include_pad]
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub count_include_pad: Option<bool>,

    /// avg: divide every window sum by N. [PyTorch: divisor_override]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub divisor_override: Option<String>,

    /// lp: the power p (p = inf is max pooling). [PyTorch: norm_type]
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub norm_type: Option<String>,

    /// lp: which definition applies. torch: PyTorch's (Σ x^p)^(1/p), x^p not |x|^p, no
    /// padding or dilation; onnx: ONNX's (Σ |x|^p)^(1/p), any pads and dilation; auto:
    /// PyTorch's where PyTorch accepts the geometry, else ONNX's. [default: auto]
    #[arg(long, value_enum, value_name = "auto|torch|onnx")]
    pub lp_formula: Option<LpFormulaArg>,

    /// Adaptive ops: output size per spatial dim. [PyTorch: output_size]
    #[arg(long, value_name = "O[,O...]", allow_hyphen_values = true)]
    pub output_size: Option<String>,

    /// Tensor layout: ncx = (N, C, d1..dk), nxc = (N, d1..dk, C). [default: ncx]
    #[arg(long, value_enum, default_value_t = LayoutArg::Ncx, hide_default_value = true)]
    pub layout: LayoutArg,
}

/// Parses a comma-separated list of non-negative integers; `min` is the smallest allowed.
fn parse_list(flag: &str, text: &str, min: u64) -> Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let value: i128 = match part.parse() {
                Ok(v) => v,
                Err(_) => bail!("{flag} {text}: '{part}' is not an integer"),
            };
            if value < min as i128 {
                let rule = if min == 0 { "must not be negative" } else { "must be >= 1" };
                bail!("{flag} {text}: {value} {rule}");
            }
            usize::try_from(value).map_err(|_| anyhow::anyhow!("{flag} {text}: {value} is too large"))
        })
        .collect()
}

/// Checks that a per-dim list has 1 or `rank` values.
fn check_rank(flag: &str, text: &str, values: &[usize], rank: usize) -> Result<()> {
    if values.len() != 1 && values.len() != rank {
        bail!("{flag} {text}: {} values, but the input has {rank} spatial dims (give 1 or {rank})", values.len());
    }
    Ok(())
}

impl PoolArgs {
    /// The flags that only make sense for some operators, with their names.
    fn given(&self) -> Vec<&'static str> {
        let mut v = vec![];
        let flags: [(&'static str, bool); 12] = [
            ("--kernel", self.kernel.is_some()),
            ("--stride", self.stride.is_some()),
            ("--padding", self.padding.is_some()),
            ("--pads", self.pads.is_some()),
            ("--auto-pad", self.auto_pad.is_some()),
            ("--dilation", self.dilation.is_some()),
            ("--ceil-mode", self.ceil_mode),
            ("--count-include-pad", self.count_include_pad.is_some()),
            ("--divisor-override", self.divisor_override.is_some()),
            ("--norm-type", self.norm_type.is_some()),
            ("--lp-formula", self.lp_formula.is_some()),
            ("--output-size", self.output_size.is_some()),
        ];
        for (name, present) in flags {
            if present {
                v.push(name);
            }
        }
        v
    }

    /// Checks the flags that do not depend on the input, so a bad request fails before
    /// any file is read.
    pub fn validate(&self) -> Result<()> {
        let given = self.given();
        const WINDOW: [&str; 7] =
            ["--kernel", "--stride", "--padding", "--pads", "--auto-pad", "--dilation", "--ceil-mode"];
        let allowed: Vec<&str> = match self.op {
            Op::Max => WINDOW.to_vec(),
            Op::Avg => [&WINDOW[..], &["--count-include-pad", "--divisor-override"]].concat(),
            Op::Lp => [&WINDOW[..], &["--norm-type", "--lp-formula"]].concat(),
            Op::AdaptiveMax | Op::AdaptiveAvg => vec!["--output-size"],
            Op::GlobalMax | Op::GlobalAvg => vec![],
        };
        if let Some(flag) = given.iter().find(|f| !allowed.contains(f)) {
            bail!("conflicting flags: {flag} does not apply to --op {}", self.op.name());
        }
        let windowed = matches!(self.op, Op::Max | Op::Avg | Op::Lp);
        if windowed && self.kernel.is_none() {
            bail!("--kernel is required for --op {}", self.op.name());
        }
        if matches!(self.op, Op::AdaptiveMax | Op::AdaptiveAvg) {
            match &self.output_size {
                None => bail!("--output-size is required for --op {}", self.op.name()),
                Some(text) => {
                    parse_list("--output-size", text, 1)?;
                }
            }
        }
        if self.op == Op::Lp {
            self.norm_type()?;
        }
        if self.padding.is_some() && self.pads.is_some() {
            bail!("conflicting flags: --padding and --pads exclude each other");
        }
        if self.auto_pad.is_some() {
            for flag in ["--padding", "--pads", "--ceil-mode"] {
                if given.contains(&flag) {
                    bail!("conflicting flags: --auto-pad excludes {flag}");
                }
            }
        }
        for (flag, value, min) in [
            ("--kernel", &self.kernel, 1),
            ("--stride", &self.stride, 1),
            ("--dilation", &self.dilation, 1),
            ("--padding", &self.padding, 0),
            ("--pads", &self.pads, 0),
            ("--divisor-override", &self.divisor_override, 1),
        ] {
            if let Some(text) = value {
                parse_list(flag, text, min)?;
            }
        }
        if let Some(d) = &self.divisor_override {
            if parse_list("--divisor-override", d, 1)?.len() != 1 {
                bail!("--divisor-override {d}: give one number");
            }
        }
        Ok(())
    }

    /// The LP power from `--norm-type` (a number, `inf` or `-inf`; not 0).
    fn norm_type(&self) -> Result<f64> {
        let Some(text) = &self.norm_type else {
            bail!("--norm-type is required for --op lp");
        };
        let p: f64 = match text.trim() {
            "inf" | "+inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            t => t.parse().map_err(|_| anyhow::anyhow!("--norm-type {text}: not a number"))?,
        };
        if p == 0.0 || p.is_nan() {
            bail!("--norm-type {text}: must be a non-zero number (or inf)");
        }
        Ok(p)
    }

    /// The library operator for an input with `rank` spatial dims.
    pub fn operator(&self, rank: usize) -> Result<Operator> {
        self.validate()?;
        match self.op {
            Op::AdaptiveMax | Op::AdaptiveAvg => {
                let text = self.output_size.as_deref().unwrap_or_default();
                let sizes = parse_list("--output-size", text, 1)?;
                check_rank("--output-size", text, &sizes, rank)?;
                return Ok(if self.op == Op::AdaptiveMax {
                    Operator::Max(MaxPool::adaptive(&sizes))
                } else {
                    Operator::Avg(AvgPool::adaptive(&sizes))
                });
            }
            Op::GlobalMax => return Ok(Operator::Max(MaxPool::global())),
            Op::GlobalAvg => return Ok(Operator::Avg(AvgPool::global())),
            Op::Max | Op::Avg | Op::Lp => {}
        }
        let list = |flag: &str, text: &Option<String>, min: u64| -> Result<Option<Vec<usize>>> {
            match text {
                None => Ok(None),
                Some(t) => {
                    let v = parse_list(flag, t, min)?;
                    check_rank(flag, t, &v, rank)?;
                    Ok(Some(v))
                }
            }
        };
        let Some(kernel) = list("--kernel", &self.kernel, 1)? else {
            bail!("--kernel is required for --op {}", self.op.name());
        };
        let mut geometry = PoolGeometry::new(&kernel).ceil_mode(self.ceil_mode);
        if let Some(s) = list("--stride", &self.stride, 1)? {
            geometry = geometry.stride(&s);
        }
        if let Some(d) = list("--dilation", &self.dilation, 1)? {
            geometry = geometry.dilation(&d);
        }
        if let Some(p) = list("--padding", &self.padding, 0)? {
            geometry = geometry.padding(Padding::Symmetric(p));
        }
        if let Some(text) = &self.pads {
            let p = parse_list("--pads", text, 0)?;
            let padding = match p.len() {
                1 => Padding::Explicit { begin: p.clone(), end: p },
                n if n == 2 * rank => Padding::Explicit { begin: p[..rank].to_vec(), end: p[rank..].to_vec() },
                n => bail!(
                    "--pads {text}: {n} values, but {rank} spatial dims need {} (begins then ends) or 1",
                    2 * rank
                ),
            };
            geometry = geometry.padding(padding);
        }
        if let Some(mode) = self.auto_pad {
            geometry = geometry.padding(match mode {
                AutoPad::SameUpper => Padding::SameUpper,
                AutoPad::SameLower => Padding::SameLower,
                AutoPad::Valid => Padding::Valid,
            });
        }
        Ok(match self.op {
            Op::Max => Operator::Max(MaxPool::new(geometry)),
            Op::Avg => {
                let divisor = match &self.divisor_override {
                    Some(d) => Some(parse_list("--divisor-override", d, 1)?[0]),
                    None => None,
                };
                Operator::Avg(
                    AvgPool::new(geometry)
                        .count_include_pad(self.count_include_pad.unwrap_or(true))
                        .divisor_override(divisor),
                )
            }
            Op::Lp => {
                let formula = self.lp_formula.map_or(LpFormula::Auto, LpFormula::from);
                if formula == LpFormula::PyTorch && geometry.is_padded_or_dilated() {
                    bail!("--lp-formula torch: PyTorch's LP pooling takes no padding and no dilation (use --lp-formula onnx)");
                }
                Operator::Lp(LpPool::new(geometry, self.norm_type()?).formula(formula))
            }
            other => bail!("--op {}: not a windowed op", other.name()),
        })
    }
}
