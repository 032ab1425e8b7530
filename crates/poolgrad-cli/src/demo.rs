//! `poolgrad demo`: backpropagation through pooling on built-in examples, printed so a
//! learner can follow where every gradient goes, drawn as pictures, each step checked.

use crate::explain;
use anyhow::{bail, Result};
use clap::Args;
use poolgrad::Operator;
use poolgrad::{gradcheck, AvgPool, Layout, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};
use poolgrad_explain::model;
use std::path::PathBuf;

/// Arguments of `poolgrad demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the pictures (SVG and PNG). [default: poolgrad-demo]
    #[arg(long, value_name = "DIR", default_value = "poolgrad-demo", hide_default_value = true)]
    pub out: PathBuf,

    /// Print only; write no pictures.
    #[arg(long)]
    pub no_pictures: bool,

    /// No colour in the terminal.
    #[arg(long)]
    pub plain: bool,
}

/// One 2-D example.
struct Example {
    stem: &'static str,
    title: &'static str,
    rule: &'static str,
    op: Operator,
    x: Vec<Vec<f64>>,
    delta: Vec<f64>,
}

fn examples() -> Vec<Example> {
    let seed_x =
        vec![vec![1.0, 3.0, 2.0, 1.0], vec![4.0, 6.0, 5.0, 2.0], vec![3.0, 1.0, 1.0, 0.0], vec![1.0, 2.0, 2.0, 4.0]];
    let seed = PoolGeometry::new(&[2]);
    let overlap_x: Vec<Vec<f64>> =
        (0..5).map(|i| (0..5).map(|j| ((i * 7 + j * 3) % 11) as f64 + 0.5 * (i as f64)).collect()).collect();
    let overlap = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]));
    vec![
        Example {
            stem: "1-max-2x2-stride2",
            title: "1. Max pooling, 2x2 window, stride 2 (the seed's Figure 1)",
            rule: "each δ goes to the one cell that was its window's maximum; every other cell gets 0",
            op: Operator::Max(MaxPool::new(seed.clone())),
            x: seed_x.clone(),
            delta: vec![1.0, 2.0, 3.0, 4.0],
        },
        Example {
            stem: "2-avg-2x2-stride2",
            title: "2. Average pooling, 2x2 window, stride 2 (the seed's Figure 2)",
            rule: "every cell of a window gets δ / (k1·k2) = δ / 4",
            op: Operator::Avg(AvgPool::new(seed)),
            x: seed_x,
            delta: vec![1.0, 2.0, 3.0, 4.0],
        },
        Example {
            stem: "3-max-3x3-stride2-pad1",
            title: "3. Overlapping windows: max pooling, 3x3 window, stride 2, padding 1",
            rule: "windows overlap, so a cell can be the maximum of several windows: its gradient is the sum",
            op: Operator::Max(MaxPool::new(overlap.clone())),
            x: overlap_x.clone(),
            delta: (1..=9).map(f64::from).collect(),
        },
        Example {
            stem: "4-avg-3x3-stride2-pad1",
            title: "4. Overlapping windows: average pooling, 3x3 window, stride 2, padding 1",
            rule: "each window sends δ / 9 to each of its cells (count_include_pad: padding counts in the\n   divisor but receives nothing); cells shared by windows add up their shares",
            op: Operator::Avg(AvgPool::new(overlap)),
            x: overlap_x,
            delta: (1..=9).map(f64::from).collect(),
        },
        Example {
            stem: "5-max-tie",
            title: "5. A tie: two cells share a window's maximum",
            rule: "the whole δ goes to the first maximum in row-major order (PyTorch's rule)",
            op: Operator::Max(MaxPool::new(PoolGeometry::new(&[2]))),
            x: vec![vec![7.0, 2.0], vec![3.0, 7.0]],
            delta: vec![1.0],
        },
    ]
}

pub fn demo(args: &DemoArgs) -> Result<()> {
    let style = explain::style(args.plain);
    outln!("poolgrad demo: backpropagation through pooling, step by step.")?;
    outln!("Notation: x is the input, y = pool(x) the output, δ = ∂L/∂y the gradient arriving")?;
    outln!("from the loss L, and ∂L/∂x the gradient poolgrad sends back to the input.\n")?;
    let mut pictures = Vec::new();
    for ex in examples() {
        let (h, w) = (ex.x.len(), ex.x[0].len());
        outln!("== {} ==", ex.title)?;
        outln!(" rule: {}", ex.rule)?;
        let explanation =
            model::explain(&ex.op, ex.title[3..].to_string(), &[h, w], ex.x.concat(), Some(ex.delta.clone()))?;
        explain::print(&explanation, style)?;
        // The parts listed add up to the library's gradient.
        for i in 0..explanation.x.len() {
            let total: f64 = explanation.contributions(i).iter().map(|&(o, c)| c * explanation.delta[o]).sum();
            if (total - explanation.grad[i]).abs() > 1e-12 {
                bail!(
                    "demo self-check failed at x{}: {total} vs {}",
                    explanation.index_name(i, false),
                    explanation.grad[i]
                );
            }
        }
        if ex.stem == "5-max-tie" {
            tie_note(&ex)?;
        } else {
            check(&ex, h, w)?;
        }
        if !args.no_pictures {
            pictures.extend(explain::write_pictures(&explanation, &args.out, ex.stem, true)?);
        }
    }
    if !pictures.is_empty() {
        outln!("Pictures of every step ({} files) are in {}/", pictures.len(), args.out.display())?;
    }
    outln!("Try your own: poolgrad explain --help")?;
    Ok(())
}

/// Central finite differences against the backward.
fn check(ex: &Example, h: usize, w: usize) -> Result<()> {
    let x = Tensor::new(ex.x.concat(), Shape::new(1, 1, &[h, w]), Layout::ChannelsFirst)?;
    let report = gradcheck(&ex.op, &x.view(), 1e-6)?;
    outln!(
        " check: central finite differences agree with the backward on all {} cells (max |error| = {:.1e})\n",
        report.checked,
        report.max_abs_error
    )?;
    if report.max_abs_error > 1e-6 {
        bail!("demo gradient check failed: {report:?}");
    }
    Ok(())
}

/// At a tie the max is not differentiable: show the central differences and the rule.
fn tie_note(ex: &Example) -> Result<()> {
    let Operator::Max(pool) = &ex.op else { bail!("the tie example is max pooling") };
    let values = ex.x.concat();
    let shape = Shape::new(1, 1, &[2, 2]);
    let eps = 1e-6;
    let numeric = |cell: usize| -> Result<f64> {
        let mut probe = values.clone();
        probe[cell] += eps;
        let up = pool.forward(&Tensor::new(probe.clone(), shape.clone(), Layout::ChannelsFirst)?.view())?.data()[0];
        probe[cell] -= 2.0 * eps;
        let down = pool.forward(&Tensor::new(probe, shape.clone(), Layout::ChannelsFirst)?.view())?.data()[0];
        Ok((up - down) / (2.0 * eps))
    };
    let (a, b) = (numeric(0)?, numeric(3)?);
    outln!(" x[0][0] and x[1][1] are both 7. The max is not differentiable here: central differences")?;
    outln!(
        " give {} and {} (each one-sided derivative is 1 or 0). poolgrad, like PyTorch, sends all",
        model::number(a),
        model::number(b)
    )?;
    outln!(" of δ to the first maximum in row-major order, x[0][0]: a valid subgradient, and the total")?;
    outln!(" δ reaching the input is conserved.\n")?;
    Ok(())
}
