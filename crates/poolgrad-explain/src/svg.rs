//! The pictures, as SVG: the forward pass (input with its padding and every window
//! outlined in its output's colour, then the output) and the backward pass (δ, then the
//! input gradient with, in each cell, the coloured terms it sums).
//!
//! Elements carry `data-*` attributes (role, index, exact value, terms) so tests can
//! read a picture back and check it against the library.

use crate::model::{number, Explanation, Formula};
use crate::palette;
use std::fmt::Write;

const FONT: &str = "DejaVu Sans";
const MARGIN: f64 = 28.0;
const CELL: f64 = 52.0;
const TOP: f64 = 96.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

struct Svg {
    body: String,
    width: f64,
    height: f64,
}

impl Svg {
    fn new() -> Self {
        Svg { body: String::new(), width: 0.0, height: 0.0 }
    }

    fn grow(&mut self, x: f64, y: f64) {
        self.width = self.width.max(x);
        self.height = self.height.max(y);
    }

    #[allow(clippy::too_many_arguments)]
    fn text(&mut self, x: f64, y: f64, size: f64, anchor: &str, fill: &str, weight: &str, text: &str, data: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" font-weight="{weight}"{data}>{}</text>"#,
            esc(text)
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, style: &str, data: &str) {
        let _ = writeln!(self.body, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" {style}{data}/>"#);
        self.grow(x + w, y + h);
    }

    fn finish(mut self, title: &str, subtitle: &str) -> String {
        // Room for the title and subtitle (DejaVu Sans averages ~0.6 em per character).
        self.grow(MARGIN + 0.6 * 19.0 * title.chars().count() as f64, 0.0);
        self.grow(MARGIN + 0.58 * 13.0 * subtitle.chars().count() as f64, 0.0);
        let (w, h) = ((self.width + MARGIN).ceil(), (self.height + MARGIN).ceil());
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{font}">"#,
                "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                r##"<text x="{m}" y="36" font-size="19" font-weight="bold" fill="#222">{title}</text>"##,
                "\n",
                r##"<text x="{m}" y="60" font-size="13" fill="#555">{subtitle}</text>"##,
                "\n{body}</svg>\n"
            ),
            w = w,
            h = h,
            font = FONT,
            m = MARGIN,
            title = esc(title),
            subtitle = esc(subtitle),
            body = self.body
        )
    }
}

/// Light tint of an output's colour (for filled cells).
fn tint(o: usize) -> String {
    format!(r#"fill="{}" fill-opacity="0.16" stroke="{}" stroke-width="2""#, palette::hex(o), palette::hex(o))
}

/// Draws a grid of values; returns its height. `cell_style(k)` styles cell `k`.
#[allow(clippy::too_many_arguments)]
fn values_grid(
    svg: &mut Svg,
    x0: f64,
    y0: f64,
    dims: [usize; 3],
    caption: &str,
    role: &str,
    values: &[f64],
    name_of: impl Fn(usize) -> String,
    cell_style: impl Fn(usize) -> String,
) -> f64 {
    let mut y = y0;
    let plane = dims[1] * dims[2];
    for s in 0..dims[0] {
        let cap = if dims[0] > 1 { format!("{caption}, slice {s}") } else { caption.to_string() };
        svg.text(x0, y - 10.0, 13.0, "start", "#333", "normal", &cap, "");
        for r in 0..dims[1] {
            for c in 0..dims[2] {
                let k = s * plane + r * dims[2] + c;
                let (cx, cy) = (x0 + c as f64 * CELL, y + r as f64 * CELL);
                svg.rect(cx, cy, CELL, CELL, &cell_style(k), "");
                let data = format!(r#" data-role="{role}" data-index="{}" data-value="{:e}""#, name_of(k), values[k]);
                svg.text(
                    cx + CELL / 2.0,
                    cy + CELL / 2.0 + 5.0,
                    14.0,
                    "middle",
                    "#111",
                    "normal",
                    &number(values[k]),
                    &data,
                );
            }
        }
        y += dims[1] as f64 * CELL + 40.0;
    }
    y - y0
}

/// The forward picture.
pub fn forward(ex: &Explanation) -> String {
    let mut svg = Svg::new();
    let [d0, d1, d2] = ex.in_dims();
    let (pr, pc) = ((ex.axes[1].pad_begin, ex.axes[1].pad_end), (ex.axes[2].pad_begin, ex.axes[2].pad_end));
    // Input grid including the padding ring; cell (row, col) of the input sits at
    // ((row + pad_top) * CELL, (col + pad_left) * CELL) from the ring's corner.
    let x0 = MARGIN;
    let rows_total = pr.0 + d1 + pr.1;
    let cols_total = pc.0 + d2 + pc.1;
    let slice_h = rows_total as f64 * CELL + 40.0;
    let origin = |s: usize, r: i64, c: i64| {
        (x0 + (c + pc.0 as i64) as f64 * CELL, TOP + s as f64 * slice_h + (r + pr.0 as i64) as f64 * CELL)
    };
    for s in 0..d0 {
        let caption = if d0 > 1 { format!("input x, slice {s}") } else { "input x".to_string() };
        let pad_note = if pr.0 + pr.1 + pc.0 + pc.1 > 0 { " (grey: padding, never read as a value)" } else { "" };
        svg.text(
            x0,
            TOP + s as f64 * slice_h - 10.0,
            13.0,
            "start",
            "#333",
            "normal",
            &format!("{caption}{pad_note}"),
            "",
        );
        for r in -(pr.0 as i64)..(d1 + pr.1) as i64 {
            for c in -(pc.0 as i64)..(d2 + pc.1) as i64 {
                let (cx, cy) = origin(s, r, c);
                let inside = r >= 0 && c >= 0 && (r as usize) < d1 && (c as usize) < d2;
                if inside {
                    svg.rect(cx, cy, CELL, CELL, r##"fill="white" stroke="#999" stroke-width="1""##, "");
                    let k = (s * d1 + r as usize) * d2 + c as usize;
                    let data = format!(
                        r#" data-role="x" data-index="{}" data-value="{:e}""#,
                        ex.index_name(k, false),
                        ex.x[k]
                    );
                    svg.text(
                        cx + CELL / 2.0,
                        cy + CELL / 2.0 + 5.0,
                        14.0,
                        "middle",
                        "#111",
                        "normal",
                        &number(ex.x[k]),
                        &data,
                    );
                } else {
                    svg.rect(
                        cx,
                        cy,
                        CELL,
                        CELL,
                        r##"fill="#eeeeee" stroke="#bbb" stroke-width="1" stroke-dasharray="4 3""##,
                        r#" data-role="pad""#,
                    );
                    svg.text(cx + CELL / 2.0, cy + CELL / 2.0 + 4.0, 10.0, "middle", "#aaa", "normal", "pad", "");
                }
            }
        }
    }
    // Windows: one colour per output; nested insets keep overlapping outlines apart.
    for o in 0..ex.y.len() {
        let taps = ex.window_taps(o);
        let colour = palette::hex(o);
        let inset = 3.0 + 4.0 * (o % 4) as f64;
        let list: Vec<String> = taps.iter().map(|t| format!("{},{},{}", t[0], t[1], t[2])).collect();
        let data = format!(r#" data-role="window" data-output="{o}" data-taps="{}""#, list.join(";"));
        for s in 0..d0 {
            let on: Vec<&[i64; 3]> = taps.iter().filter(|t| t[0] == s as i64).collect();
            if on.is_empty() {
                continue;
            }
            let (r0, r1) = (on.iter().map(|t| t[1]).min().unwrap_or(0), on.iter().map(|t| t[1]).max().unwrap_or(0));
            let (c0, c1) = (on.iter().map(|t| t[2]).min().unwrap_or(0), on.iter().map(|t| t[2]).max().unwrap_or(0));
            let full = ((r1 - r0 + 1) * (c1 - c0 + 1)) as usize == on.len();
            let style = format!(r#"fill="none" stroke="{colour}" stroke-width="2.5" rx="4""#);
            if full {
                let (x, y) = origin(s, r0, c0);
                let (w, h) = ((c1 - c0 + 1) as f64 * CELL, (r1 - r0 + 1) as f64 * CELL);
                svg.rect(x + inset, y + inset, w - 2.0 * inset, h - 2.0 * inset, &style, &data);
            } else {
                // Dilated windows: outline each tap.
                for t in on {
                    let (x, y) = origin(s, t[1], t[2]);
                    svg.rect(x + inset, y + inset, CELL - 2.0 * inset, CELL - 2.0 * inset, &style, &data);
                }
            }
        }
    }
    // Max: a dot in its window's colour on each window's maximum (several for a cell
    // that wins several windows).
    if ex.formula == Formula::Max {
        for o in 0..ex.y.len() {
            if let Some(i) = ex.jacobian[o].iter().position(|&v| v != 0.0) {
                let [s, r, c] = Explanation::unflat(i, ex.in_dims());
                let (x, y) = origin(s, r as i64, c as i64);
                let k = ex.jacobian[..o].iter().filter(|row| row[i] != 0.0).count() as f64;
                let _ = writeln!(
                    svg.body,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="{}" data-role="argmax" data-output="{o}" data-index="{}"/>"#,
                    x + 10.0 + 10.0 * k,
                    y + CELL - 10.0,
                    palette::hex(o),
                    ex.index_name(i, false)
                );
            }
        }
    }
    // Output grid, each cell tinted with its window's colour.
    let x1 = x0 + cols_total as f64 * CELL + 70.0;
    let _ = writeln!(
        svg.body,
        r##"<text x="{:.1}" y="{:.1}" font-size="26" text-anchor="middle" fill="#888">→</text>"##,
        x1 - 35.0,
        TOP + (rows_total as f64 * CELL) / 2.0 + 8.0
    );
    values_grid(&mut svg, x1, TOP, ex.out_dims(), "output y", "y", &ex.y, |o| ex.index_name(o, true), tint);
    let subtitle = match ex.formula {
        Formula::Max => {
            "y = the maximum of each window (dots: the winning cell; ties go to the first in row-major order)"
        }
        Formula::Avg => "y = the sum of each window over its divisor",
        Formula::Lp => "y = the p-norm of each window",
    };
    svg.finish(&format!("Forward: {}", ex.title), subtitle)
}

/// The backward picture.
pub fn backward(ex: &Explanation) -> String {
    let mut svg = Svg::new();
    let x0 = MARGIN;
    let out = ex.out_dims();
    let h = values_grid(
        &mut svg,
        x0,
        TOP,
        out,
        "incoming gradient δ = ∂L/∂y",
        "delta",
        &ex.delta,
        |o| ex.index_name(o, true),
        tint,
    );
    let _ = h;
    // The input-gradient grid: the value, then the coloured terms it sums.
    // Leave room for the δ grid's caption too.
    let x1 = x0 + (out[2] as f64 * CELL).max(215.0) + 80.0;
    let dims = ex.in_dims();
    let terms: Vec<Vec<(usize, String, f64)>> = (0..ex.x.len())
        .map(|i| ex.contributions(i).into_iter().map(|(o, c)| (o, ex.term(o, c), c)).collect())
        .collect();
    let per_line = if ex.rank == 3 { 1 } else { 2 };
    let lines = terms.iter().map(|t| t.len().div_ceil(per_line)).max().unwrap_or(0).max(1);
    let (w, hh) = (if ex.rank == 3 { 124.0 } else { 144.0 }, 34.0 + 15.0 * lines as f64);
    let _ = writeln!(
        svg.body,
        r##"<text x="{:.1}" y="{:.1}" font-size="26" text-anchor="middle" fill="#888">→</text>"##,
        x1 - 45.0,
        TOP + out[1] as f64 * CELL / 2.0 + 8.0
    );
    let plane = dims[1] * dims[2];
    for s in 0..dims[0] {
        let y0 = TOP + s as f64 * (dims[1] as f64 * hh + 40.0);
        let cap = if dims[0] > 1 {
            format!("∂L/∂x, slice {s}: each cell sums the terms sent to it")
        } else {
            "∂L/∂x: each cell sums the terms sent to it".to_string()
        };
        svg.text(x1, y0 - 10.0, 13.0, "start", "#333", "normal", &cap, "");
        for r in 0..dims[1] {
            for c in 0..dims[2] {
                let i = s * plane + r * dims[2] + c;
                let (cx, cy) = (x1 + c as f64 * w, y0 + r as f64 * hh);
                let receives = !terms[i].is_empty();
                let fill = if receives { "#fbfbfb" } else { "#f3f3f3" };
                svg.rect(cx, cy, w, hh, &format!(r##"fill="{fill}" stroke="#999" stroke-width="1""##), "");
                let list: Vec<String> = terms[i].iter().map(|(o, _, coef)| format!("{o}:{coef:e}")).collect();
                let data = format!(
                    r#" data-role="grad" data-index="{}" data-value="{:e}" data-terms="{}""#,
                    ex.index_name(i, false),
                    ex.grad[i],
                    list.join(";")
                );
                let colour = if receives { "#111" } else { "#aaa" };
                svg.text(cx + w / 2.0, cy + 20.0, 15.0, "middle", colour, "bold", &number(ex.grad[i]), &data);
                for (line, chunk) in terms[i].chunks(per_line).enumerate() {
                    let mut spans = String::new();
                    for (k, (o, t, _)) in chunk.iter().enumerate() {
                        let plus = if line == 0 && k == 0 {
                            "= "
                        } else if k == 0 {
                            "+ "
                        } else {
                            " + "
                        };
                        let _ = write!(
                            spans,
                            r##"<tspan fill="#777">{plus}</tspan><tspan fill="{}" font-weight="bold">{}</tspan>"##,
                            palette::hex(*o),
                            esc(t)
                        );
                    }
                    let _ = writeln!(
                        svg.body,
                        r#"<text x="{:.1}" y="{:.1}" font-size="10.5" text-anchor="middle" data-role="terms">{spans}</text>"#,
                        cx + w / 2.0,
                        cy + 37.0 + 15.0 * line as f64
                    );
                }
            }
        }
        svg.grow(x1 + dims[2] as f64 * w, y0 + dims[1] as f64 * hh);
    }
    let subtitle = match ex.formula {
        Formula::Max => "each δ goes to its window's maximum; every other cell gets 0; overlapping windows add up",
        Formula::Avg => "each cell of a window gets δ / divisor (padding counts in the divisor only if count_include_pad); overlaps add up",
        Formula::Lp => "each cell of a window gets δ · ∂y/∂x (the factor shown after δ); overlaps add up",
    };
    svg.finish(&format!("Backward: {}", ex.title), subtitle)
}
