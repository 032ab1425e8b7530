//! The terminal rendering: grids side by side, and each input gradient as the sum it
//! comes from, coloured by the output that sent each term.

use crate::model::{number, Explanation};
use crate::palette;

/// ANSI colouring, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Color,
}

fn paint(style: Style, o: usize, text: &str) -> String {
    match style {
        Style::Plain => text.to_string(),
        Style::Color => format!("\x1b[38;5;{}m{text}\x1b[0m", palette::ansi(o)),
    }
}

/// Renders grids side by side under their captions; `cells[k]` paints entry `k`.
pub fn side_by_side(grids: &[(String, Vec<String>, usize)]) -> String {
    let cell = 7;
    let blocks: Vec<Vec<String>> = grids
        .iter()
        .map(|(caption, data, width)| {
            let mut lines = vec![caption.clone()];
            for row in data.chunks((*width).max(1)) {
                lines.push(row.iter().map(|v| format!("{v:>cell$}")).collect());
            }
            lines
        })
        .collect();
    let visible = |s: &str| {
        // Width without ANSI escapes.
        let mut n = 0;
        let mut esc = false;
        for ch in s.chars() {
            match (esc, ch) {
                (false, '\x1b') => esc = true,
                (true, 'm') => esc = false,
                (false, _) => n += 1,
                _ => {}
            }
        }
        n
    };
    let widths: Vec<usize> = blocks.iter().map(|b| b.iter().map(|l| visible(l)).max().unwrap_or(0) + 4).collect();
    let height = blocks.iter().map(Vec::len).max().unwrap_or(0);
    (0..height)
        .map(|i| {
            let line: String = blocks
                .iter()
                .zip(&widths)
                .map(|(b, &w)| {
                    let s = b.get(i).map_or("", String::as_str);
                    format!("{s}{}", " ".repeat(w.saturating_sub(visible(s))))
                })
                .collect();
            format!("   {}", line.trim_end())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The slices of a grid (one per 3-D slice), each as (caption, cells, width).
fn slices(
    ex: &Explanation,
    name: &str,
    values: &[f64],
    output: bool,
    paint_cell: impl Fn(usize, String) -> String,
) -> Vec<(String, Vec<String>, usize)> {
    let dims = if output { ex.out_dims() } else { ex.in_dims() };
    let plane = dims[1] * dims[2];
    (0..dims[0])
        .map(|s| {
            let shape = if ex.rank == 1 { format!("{}", dims[2]) } else { format!("{}x{}", dims[1], dims[2]) };
            let caption = if dims[0] > 1 { format!("{name} [{s}] ({shape})") } else { format!("{name} ({shape})") };
            let cells = (0..plane).map(|k| paint_cell(s * plane + k, number(values[s * plane + k]))).collect();
            (caption, cells, dims[2])
        })
        .collect()
}

/// The forward: input and output grids (outputs coloured like their windows).
pub fn forward(ex: &Explanation, style: Style) -> String {
    let mut grids = slices(ex, "x", &ex.x, false, |_, s| s);
    grids.extend(slices(ex, "y", &ex.y, true, |o, s| paint(style, o, &format!("{s:>7}"))));
    side_by_side(&grids)
}

/// The backward: δ and ∂L/∂x grids.
pub fn backward(ex: &Explanation, style: Style) -> String {
    let mut grids = slices(ex, "δ", &ex.delta, true, |o, s| paint(style, o, &format!("{s:>7}")));
    grids.extend(slices(ex, "∂L/∂x", &ex.grad, false, |_, s| s));
    side_by_side(&grids)
}

/// Each non-zero input gradient as its sum: `∂L/∂x[i][j] = δ[u][v] + ... = value`.
pub fn sums(ex: &Explanation, style: Style) -> String {
    let mut lines = Vec::new();
    for i in 0..ex.x.len() {
        let parts = ex.contributions(i);
        if parts.is_empty() {
            continue;
        }
        let terms: Vec<String> = parts.iter().map(|&(o, c)| paint(style, o, &ex.term(o, c))).collect();
        lines.push(format!("   ∂L/∂x{} = {} = {}", ex.index_name(i, false), terms.join(" + "), number(ex.grad[i])));
    }
    if lines.is_empty() {
        lines.push("   (no input cell receives gradient)".into());
    }
    lines.join("\n")
}
