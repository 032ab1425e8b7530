//! `poolgrad explain`: draws where every gradient goes, for the user's configuration.

use crate::args::{Op, PoolArgs};
use crate::memory;
use crate::npy::{self, Data};
use anyhow::{bail, Context, Result};
use clap::Args;
use poolgrad::{Layout, Pooling, Shape};
use poolgrad_explain::{model, png, svg, terminal};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Arguments of `poolgrad explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub pool: PoolArgs,

    /// Input tensor (.npy). Without it, --shape with --values or --seed makes one.
    #[arg(long, value_name = "X.npy", conflicts_with_all = ["values", "seed"])]
    pub input: Option<PathBuf>,

    /// Shape N,C,d1,... (1 to 3 spatial dims) of a generated input. [default: 1,1,<number of --values>]
    #[arg(long, value_name = "N,C,d1,...")]
    pub shape: Option<String>,

    /// The input values, comma-separated, in C order of --shape.
    #[arg(long, value_name = "V,V,...", allow_hyphen_values = true, conflicts_with = "seed")]
    pub values: Option<String>,

    /// Seed for a generated input of small integers (ties included). [default: 1]
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,

    /// Gradient w.r.t. the output (.npy, the output's shape). [default: all ones]
    #[arg(long, value_name = "GY.npy")]
    pub grad_output: Option<PathBuf>,

    /// Which (n, c) plane to draw. [default: 0,0]
    #[arg(long, value_name = "N,C", default_value = "0,0", hide_default_value = true)]
    pub plane: String,

    /// Folder for the pictures (created if missing). [default: the current folder]
    #[arg(long, value_name = "DIR", default_value = ".", hide_default_value = true)]
    pub out: PathBuf,

    /// Also write PNG files beside the SVG files.
    #[arg(long)]
    pub png: bool,

    /// No colour in the terminal.
    #[arg(long)]
    pub plain: bool,
}

/// Terminal style: colour only on a terminal, unless --plain or NO_COLOR.
pub fn style(plain: bool) -> terminal::Style {
    if plain || std::env::var_os("NO_COLOR").is_some() || !std::io::stdout().is_terminal() {
        terminal::Style::Plain
    } else {
        terminal::Style::Color
    }
}

/// A title for the configuration, in the flags' words.
fn describe(args: &PoolArgs, spatial: &[usize]) -> String {
    let name = match args.op {
        Op::Max => "max pooling",
        Op::Avg => "average pooling",
        Op::Lp => "LP pooling",
        Op::AdaptiveMax => "adaptive max pooling",
        Op::AdaptiveAvg => "adaptive average pooling",
        Op::GlobalMax => "global max pooling",
        Op::GlobalAvg => "global average pooling",
    };
    let mut parts =
        vec![format!("{name} of a {} input", spatial.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x"))];
    for (label, value) in [
        ("kernel", &args.kernel),
        ("stride", &args.stride),
        ("padding", &args.padding),
        ("pads", &args.pads),
        ("dilation", &args.dilation),
        ("output size", &args.output_size),
        ("p", &args.norm_type),
        ("divisor", &args.divisor_override),
    ] {
        if let Some(v) = value {
            parts.push(format!("{label} {v}"));
        }
    }
    if let Some(mode) = args.auto_pad {
        parts.push(format!("auto_pad {mode:?}").to_lowercase());
    }
    if args.ceil_mode {
        parts.push("ceil mode".into());
    }
    if let Some(formula) = args.lp_formula {
        parts.push(format!("{} formula", formula.name()));
    }
    if let Some(c) = args.count_include_pad {
        parts.push(format!("count_include_pad {c}"));
    }
    parts.join(", ")
}

/// A file-name stem for the configuration: `max-k3-s2-p1`.
fn stem(args: &PoolArgs) -> String {
    let mut s = args.op.name().to_string();
    for (tag, value) in [
        ("k", &args.kernel),
        ("s", &args.stride),
        ("p", &args.padding),
        ("pads", &args.pads),
        ("d", &args.dilation),
        ("o", &args.output_size),
        ("norm", &args.norm_type),
    ] {
        if let Some(v) = value {
            s.push_str(&format!("-{tag}{}", v.replace(',', "x")));
        }
    }
    if args.ceil_mode {
        s.push_str("-ceil");
    }
    if args.count_include_pad == Some(false) {
        s.push_str("-excludepad");
    }
    if let Some(formula) = args.lp_formula {
        s.push_str(&format!("-{}", formula.name()));
    }
    s
}

fn to_f64(data: Data) -> Result<Vec<f64>> {
    let what = "the input in float64";
    match data {
        Data::F16(v) => memory::collect(v.iter().map(|x| x.to_f64()), what),
        Data::F32(v) => memory::collect(v.iter().map(|&x| x as f64), what),
        Data::F64(v) => Ok(v),
        Data::U8(v) => memory::collect(v.iter().map(|&x| x as f64), what),
        Data::I8(v) => memory::collect(v.iter().map(|&x| x as f64), what),
        Data::I32(v) => memory::collect(v.iter().map(|&x| x as f64), what),
        Data::I64(v) => memory::collect(v.iter().map(|&x| x as f64), what),
    }
}

fn parse_sizes(flag: &str, text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|p| p.trim().parse::<usize>().with_context(|| format!("{flag} {text}: '{p}' is not a size")))
        .collect()
}

/// Writes the explanation's pictures as `<dir>/<stem>-forward.svg` and `-backward.svg`
/// (and PNGs); returns the paths written.
pub fn write_pictures(ex: &model::Explanation, dir: &Path, stem: &str, with_png: bool) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
    let mut written = Vec::new();
    for (part, doc) in [("forward", svg::forward(ex)), ("backward", svg::backward(ex))] {
        let path = dir.join(format!("{stem}-{part}.svg"));
        std::fs::write(&path, &doc).with_context(|| format!("{}", path.display()))?;
        written.push(path);
        if with_png {
            let path = dir.join(format!("{stem}-{part}.png"));
            std::fs::write(&path, png::render(&doc)?).with_context(|| format!("{}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Prints an explanation in the terminal.
pub fn print(ex: &model::Explanation, style: terminal::Style) -> Result<()> {
    outln!(" forward:")?;
    outln!("{}\n", terminal::forward(ex, style))?;
    outln!(" backward:")?;
    outln!("{}\n", terminal::backward(ex, style))?;
    outln!(" where each nonzero gradient comes from:")?;
    outln!("{}", terminal::sums(ex, style))?;
    Ok(())
}

pub fn explain(args: &ExplainArgs) -> Result<()> {
    args.pool.validate()?;
    let layout: Layout = args.pool.layout.into();
    let (dims, data) = match (&args.input, &args.values) {
        (Some(path), _) => {
            let a = npy::read(path, "--input")?;
            (a.dims, to_f64(a.data)?)
        }
        (None, Some(text)) => {
            let values: Vec<f64> = text
                .split(',')
                .map(|v| v.trim().parse::<f64>().with_context(|| format!("--values: '{v}' is not a number")))
                .collect::<Result<_>>()?;
            let dims = match &args.shape {
                Some(s) => parse_sizes("--shape", s)?,
                None => vec![1, 1, values.len()],
            };
            (dims, values)
        }
        (None, None) => {
            let Some(s) = &args.shape else { bail!("give --input, or --shape with --values or --seed") };
            let dims = parse_sizes("--shape", s)?;
            let n = Shape::from_dims(&dims, layout)?.numel()?;
            let mut seeded = poolgrad_explain::seeded_values(args.seed.unwrap_or(1));
            let values = (0..n).map(|_| seeded.next().unwrap_or_default());
            (dims, memory::collect(values, "the generated input")?)
        }
    };
    let shape = Shape::from_dims(&dims, layout)?;
    let expected = shape.numel()?;
    if data.len() != expected {
        bail!("the input has {} values but shape {dims:?} needs {expected}", data.len());
    }
    let pl = parse_sizes("--plane", &args.plane)?;
    if pl.len() != 2 || pl[0] >= shape.batch || pl[1] >= shape.channels {
        bail!("--plane {}: needs n,c with n < {} and c < {}", args.plane, shape.batch, shape.channels);
    }
    let op = args.pool.operator(shape.spatial.len())?;
    let x = poolgrad_explain::plane(&data, &shape, layout, pl[0], pl[1]);
    let delta = match &args.grad_output {
        None => None,
        Some(path) => {
            let g = npy::read(path, "--grad-output")?;
            let out = op.output_shape(&shape)?;
            if g.dims != out.dims(layout) {
                bail!(
                    "--grad-output {}: shape {:?} but the output shape is {:?}",
                    path.display(),
                    g.dims,
                    out.dims(layout)
                );
            }
            Some(poolgrad_explain::plane(&to_f64(g.data)?, &out, layout, pl[0], pl[1]))
        }
    };
    let title = describe(&args.pool, &shape.spatial);
    let ex = model::explain(&op, title.clone(), &shape.spatial, x, delta)?;
    outln!("== {title} (plane n={}, c={}) ==", pl[0], pl[1])?;
    print(&ex, style(args.plain))?;
    let written = write_pictures(&ex, &args.out, &stem(&args.pool), args.png)?;
    outln!("\n pictures: {}", written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))?;
    Ok(())
}
