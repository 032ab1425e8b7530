//! `poolgrad demo`: backpropagation through pooling on built-in examples, printed so a
//! learner can follow where every gradient goes, each step checked.

use anyhow::{bail, Result};
use clap::Args;
use poolgrad::{gradcheck, AvgPool, Layout, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};

/// Arguments of `poolgrad demo` (none needed).
#[derive(Args, Debug)]
pub struct DemoArgs {}

/// One 2-D example: a geometry, an operator kind, an input grid and a δ grid.
struct Example {
    title: &'static str,
    rule: &'static str,
    max: bool,
    geometry: PoolGeometry,
    x: Vec<Vec<f64>>,
    delta: Vec<f64>,
}

pub fn demo(_: &DemoArgs) -> Result<()> {
    println!("poolgrad demo: backpropagation through pooling, step by step.");
    println!("Notation: x is the input, y = pool(x) the output, δ = ∂L/∂y the gradient arriving");
    println!("from the loss L, and ∂L/∂x the gradient poolgrad sends back to the input.\n");
    let seed_x = vec![
        vec![1.0, 3.0, 2.0, 1.0],
        vec![4.0, 6.0, 5.0, 2.0],
        vec![3.0, 1.0, 1.0, 0.0],
        vec![1.0, 2.0, 2.0, 4.0],
    ];
    let seed = PoolGeometry::new(&[2]);
    let overlap_x: Vec<Vec<f64>> =
        (0..5).map(|i| (0..5).map(|j| ((i * 7 + j * 3) % 11) as f64 + 0.5 * (i as f64)).collect()).collect();
    let overlap = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]));
    let examples = [
        Example {
            title: "1. Max pooling, 2x2 window, stride 2 (the seed's Figure 1)",
            rule: "each δ goes to the one cell that was its window's maximum; every other cell gets 0",
            max: true,
            geometry: seed.clone(),
            x: seed_x.clone(),
            delta: vec![1.0, 2.0, 3.0, 4.0],
        },
        Example {
            title: "2. Average pooling, 2x2 window, stride 2 (the seed's Figure 2)",
            rule: "every cell of a window gets δ / (k1·k2) = δ / 4",
            max: false,
            geometry: seed,
            x: seed_x,
            delta: vec![1.0, 2.0, 3.0, 4.0],
        },
        Example {
            title: "3. Overlapping windows: max pooling, 3x3 window, stride 2, padding 1",
            rule: "windows overlap, so a cell can be the maximum of several windows: its gradient is the sum",
            max: true,
            geometry: overlap.clone(),
            x: overlap_x.clone(),
            delta: (1..=9).map(f64::from).collect(),
        },
        Example {
            title: "4. Overlapping windows: average pooling, 3x3 window, stride 2, padding 1",
            rule: "each window sends δ / 9 to each of its cells (count_include_pad: padding counts in the\n   divisor but receives nothing); cells shared by windows add up their shares",
            max: false,
            geometry: overlap,
            x: overlap_x,
            delta: (1..=9).map(f64::from).collect(),
        },
    ];
    for ex in &examples {
        show(ex)?;
    }
    show_tie()
}

fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Renders grids side by side under their captions.
fn side_by_side(grids: &[(&str, &[f64], usize)]) -> String {
    let cell = 7;
    let blocks: Vec<Vec<String>> = grids
        .iter()
        .map(|(caption, data, width)| {
            let mut lines = vec![caption.to_string()];
            for row in data.chunks(*width) {
                lines.push(row.iter().map(|v| format!("{:>cell$}", number(*v))).collect());
            }
            lines
        })
        .collect();
    let widths: Vec<usize> = blocks.iter().map(|b| b.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 4).collect();
    let height = blocks.iter().map(Vec::len).max().unwrap_or(0);
    (0..height)
        .map(|i| {
            let line: String = blocks
                .iter()
                .zip(&widths)
                .map(|(b, &w)| {
                    let s = b.get(i).map_or("", String::as_str);
                    format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())))
                })
                .collect();
            format!("   {}", line.trim_end())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every contribution `(input cell, output cell, amount)` of the backward pass, derived
/// from the window geometry (avg) or the saved argmax (max).
fn contributions(ex: &Example, shape: &Shape, indices: Option<&[i64]>) -> Result<Vec<(usize, usize, f64, usize)>> {
    let axes = ex.geometry.resolve(&shape.spatial)?;
    let (oh, ow, iw) = (axes[0].output, axes[1].output, shape.spatial[1]);
    let mut list = Vec::new();
    for u in 0..oh {
        for v in 0..ow {
            let o = u * ow + v;
            match indices {
                Some(idx) if idx[o] >= 0 => list.push((idx[o] as usize, o, ex.delta[o], 1)),
                Some(_) => {}
                None => {
                    let divisor = axes[0].padded_tap_count(u) * axes[1].padded_tap_count(v);
                    for (_, i) in axes[0].valid_taps(u) {
                        for (_, j) in axes[1].valid_taps(v) {
                            list.push((i * iw + j, o, ex.delta[o] / divisor as f64, divisor));
                        }
                    }
                }
            }
        }
    }
    Ok(list)
}

fn show(ex: &Example) -> Result<()> {
    let (h, w) = (ex.x.len(), ex.x[0].len());
    let shape = Shape::new(1, 1, &[h, w]);
    let x = Tensor::new(ex.x.concat(), shape.clone(), Layout::ChannelsFirst)?;
    let max = MaxPool::new(ex.geometry.clone());
    let avg = AvgPool::new(ex.geometry.clone());
    let out_shape = max.output_shape(&shape)?;
    let (oh, ow) = (out_shape.spatial[0], out_shape.spatial[1]);
    let delta = Tensor::new(ex.delta.clone(), out_shape.clone(), Layout::ChannelsFirst)?;
    println!("== {} ==", ex.title);
    let (y, indices, grad) = if ex.max {
        let f = max.forward_with_indices(&x.view())?;
        let g = max.backward_with_indices(&shape, &delta.view(), &f.indices.view())?;
        (f.output, Some(f.indices.data().to_vec()), g)
    } else {
        (avg.forward_values(&x.view())?, None, avg.backward_from_shape(&shape, &delta.view())?)
    };
    let forward = if ex.max { "y = max of each window" } else { "y = mean of each window" };
    println!(" forward ({forward}):");
    println!("{}\n", side_by_side(&[(&format!("x ({h}x{w})"), x.data(), w), (&format!("y ({oh}x{ow})"), y.data(), ow)]));
    if let Some(idx) = &indices {
        let cells: Vec<String> = idx.iter().map(|&i| format!("x[{}][{}]", i as usize / w, i as usize % w)).collect();
        println!(" argmax of each window (saved for the backward): {}\n", cells.join(", "));
    }
    println!(" backward: {}:", ex.rule);
    println!(
        "{}\n",
        side_by_side(&[(&format!("δ ({oh}x{ow})"), delta.data(), ow), (&format!("∂L/∂x ({h}x{w})"), grad.data(), w)])
    );
    // Where each input gradient comes from, and a check that the parts add up.
    let parts = contributions(ex, &shape, indices.as_deref())?;
    println!(" where each nonzero gradient comes from:");
    for cell in 0..h * w {
        let from: Vec<&(usize, usize, f64, usize)> = parts.iter().filter(|p| p.0 == cell).collect();
        if from.is_empty() {
            continue;
        }
        let terms: Vec<String> = from
            .iter()
            .map(|(_, o, _, d)| {
                let name = format!("δ[{}][{}]", o / ow, o % ow);
                if ex.max { name } else { format!("{name}/{d}") }
            })
            .collect();
        let total: f64 = from.iter().map(|p| p.2).sum();
        if (total - grad.data()[cell]).abs() > 1e-12 {
            bail!("demo self-check failed at x[{}][{}]: {total} vs {}", cell / w, cell % w, grad.data()[cell]);
        }
        println!("   ∂L/∂x[{}][{}] = {} = {}", cell / w, cell % w, terms.join(" + "), number(grad.data()[cell]));
    }
    let report =
        if ex.max { gradcheck(&max, &x.view(), 1e-6)? } else { gradcheck(&avg, &x.view(), 1e-6)? };
    println!(
        " check: central finite differences agree with the backward on all {} cells (max |error| = {:.1e})\n",
        report.checked, report.max_abs_error
    );
    if report.max_abs_error > 1e-6 {
        bail!("demo gradient check failed: {report:?}");
    }
    Ok(())
}

fn show_tie() -> Result<()> {
    println!("== 5. A tie: two cells share a window's maximum ==");
    let shape = Shape::new(1, 1, &[2, 2]);
    let values = vec![7.0, 2.0, 3.0, 7.0];
    let x = Tensor::new(values.clone(), shape.clone(), Layout::ChannelsFirst)?;
    let pool = MaxPool::new(PoolGeometry::new(&[2]));
    let f = pool.forward_with_indices(&x.view())?;
    let delta = Tensor::new(vec![1.0], f.output.shape().clone(), Layout::ChannelsFirst)?;
    let g = pool.backward_with_indices(&shape, &delta.view(), &f.indices.view())?;
    println!("{}\n", side_by_side(&[("x (2x2)", x.data(), 2), ("δ", delta.data(), 1), ("∂L/∂x", g.data(), 2)]));
    // Central differences at the two tied cells.
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
    println!(" x[0][0] and x[1][1] are both 7. The max is not differentiable here: central differences");
    println!(" give {} and {} (each one-sided derivative is 1 or 0). poolgrad, like PyTorch, sends all", number(a), number(b));
    println!(" of δ to the first maximum in row-major order, x[0][0]: a valid subgradient, and the total");
    println!(
        " δ = {} reaching the input is conserved (sum of ∂L/∂x = {}).\n",
        number(delta.data()[0]),
        number(g.data().iter().sum())
    );
    if g.data() != [1.0, 0.0, 0.0, 0.0] {
        bail!("demo self-check failed: tie gradient {:?}", g.data());
    }
    println!("Try your own: poolgrad run --help");
    Ok(())
}
