//! `poolgrad explain`: the pictures are read back and checked against the library —
//! every number drawn, every window outline, every gradient sum — and the PNG renders.

use poolgrad::{AvgPool, Layout, MaxPool, Padding, PoolGeometry, Pooling, Shape, Tensor};
use std::collections::HashMap;
use std::process::Command;

fn poolgrad(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_poolgrad")).args(args).output().expect("binary runs")
}

/// Every element with `data-role="{role}"`: its attributes and its text content.
fn elements(svg: &str, role: &str) -> Vec<(HashMap<String, String>, String)> {
    let needle = format!("data-role=\"{role}\"");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = svg[from..].find(&needle) {
        let at = from + pos;
        let start = svg[..at].rfind('<').unwrap();
        let end = at + svg[at..].find('>').unwrap();
        let tag = &svg[start + 1..end];
        let mut attrs = HashMap::new();
        let mut rest = tag;
        while let Some(eq) = rest.find("=\"") {
            let name = rest[..eq].split_whitespace().last().unwrap().to_string();
            let after = &rest[eq + 2..];
            let close = after.find('"').unwrap();
            attrs.insert(name, after[..close].to_string());
            rest = &after[close + 1..];
        }
        let text = if tag.starts_with("text") {
            svg[end + 1..].split("</text>").next().unwrap().to_string()
        } else {
            String::new()
        };
        out.push((attrs, text));
        from = end;
    }
    out
}

fn value(attrs: &HashMap<String, String>) -> f64 {
    attrs["data-value"].parse().unwrap()
}

/// The drawn text is the value to 3 decimals.
fn drawn_matches(text: &str, v: f64) -> bool {
    let shown: f64 = text.parse().unwrap_or(f64::NAN);
    (shown - v).abs() <= 5e-4 + 1e-12
}

#[test]
fn pictures_show_exactly_what_the_library_computes() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f64> = (0..30).map(|i| ((i * 7) % 11) as f64 + 0.25 * (i % 3) as f64).collect();
    let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let out_dir = dir.path().to_string_lossy().to_string();
    for (op, extra) in [
        ("max", vec!["--stride", "2", "--padding", "1"]),
        ("avg", vec!["--stride", "2", "--padding", "1", "--count-include-pad", "false"]),
    ] {
        let mut args = vec!["explain", "--op", op, "--kernel", "3", "--shape", "1,1,5,6", "--values"];
        let joined = text.join(",");
        args.push(&joined);
        args.extend(extra);
        args.extend(["--out", &out_dir, "--png", "--plain"]);
        let run = poolgrad(&args);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains("where each nonzero gradient comes from"), "{stdout}");

        // The library's own results for the same request.
        let geometry = PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1]));
        let shape = Shape::new(1, 1, &[5, 6]);
        let x = Tensor::new(values.clone(), shape.clone(), Layout::ChannelsFirst).unwrap();
        let (y, gx) = if op == "max" {
            let p = MaxPool::new(geometry.clone());
            let y = p.forward(&x.view()).unwrap();
            let ones = Tensor::new(vec![1.0; y.data().len()], y.shape().clone(), Layout::ChannelsFirst).unwrap();
            let gx = p.backward(&x.view(), &ones.view()).unwrap();
            (y, gx)
        } else {
            let p = AvgPool::new(geometry.clone()).count_include_pad(false);
            let y = p.forward(&x.view()).unwrap();
            let ones = Tensor::new(vec![1.0; y.data().len()], y.shape().clone(), Layout::ChannelsFirst).unwrap();
            (y.clone(), p.backward(&x.view(), &ones.view()).unwrap())
        };
        let stem = if op == "max" { "max-k3-s2-p1" } else { "avg-k3-s2-p1-excludepad" };
        let fwd = std::fs::read_to_string(dir.path().join(format!("{stem}-forward.svg"))).unwrap();
        let bwd = std::fs::read_to_string(dir.path().join(format!("{stem}-backward.svg"))).unwrap();

        // Every input and output number drawn is the library's.
        let xs = elements(&fwd, "x");
        assert_eq!(xs.len(), 30);
        for (k, (a, t)) in xs.iter().enumerate() {
            assert_eq!(value(a), values[k], "x {k}");
            assert!(drawn_matches(t, values[k]), "x {k}: drawn {t}");
        }
        let ys = elements(&fwd, "y");
        assert_eq!(ys.len(), y.data().len());
        for (o, (a, t)) in ys.iter().enumerate() {
            assert_eq!(value(a), y.data()[o], "{op} y {o}");
            assert!(drawn_matches(t, y.data()[o]), "{op} y {o}: drawn {t}");
        }
        // 2 padded rows and 2 padded columns around 5x6.
        assert_eq!(elements(&fwd, "pad").len(), 7 * 8 - 30);

        // Every window outline is the geometry's window, and its box spans it.
        let axes = geometry.resolve(&[5, 6]).unwrap();
        let windows = elements(&fwd, "window");
        assert_eq!(windows.len(), y.data().len(), "one outline per output (no dilation)");
        for (a, _) in &windows {
            let o: usize = a["data-output"].parse().unwrap();
            let (u, v) = (o / axes[1].output, o % axes[1].output);
            let mut want = Vec::new();
            for i in 0..3i64 {
                for j in 0..3i64 {
                    let (r, c) = (axes[0].window_start(u) as i64 + i, axes[1].window_start(v) as i64 + j);
                    if (-1..6).contains(&r) && (-1..7).contains(&c) {
                        want.push(format!("0,{r},{c}"));
                    }
                }
            }
            assert_eq!(a["data-taps"], want.join(";"), "window {o}");
            let rows = want
                .iter()
                .map(|t| t.split(',').nth(1).unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let cols = want
                .iter()
                .map(|t| t.split(',').nth(2).unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let (w, h): (f64, f64) = (a["width"].parse().unwrap(), a["height"].parse().unwrap());
            let inset = (cols as f64 * 52.0 - w) / 2.0;
            assert!([3.0, 7.0, 11.0, 15.0].iter().any(|&i| (inset - i).abs() < 0.11), "window {o} inset {inset}");
            assert!((rows as f64 * 52.0 - h - 2.0 * inset).abs() < 0.11, "window {o} height");
        }
        if op == "max" {
            // One dot per window, on the library's argmax.
            let p = MaxPool::new(geometry.clone()).forward_with_indices(&x.view()).unwrap();
            let dots = elements(&fwd, "argmax");
            assert_eq!(dots.len(), y.data().len());
            for (a, _) in dots {
                let o: usize = a["data-output"].parse().unwrap();
                let i = p.indices.data()[o] as usize;
                assert_eq!(a["data-index"], format!("[{}][{}]", i / 6, i % 6));
            }
        }

        // Every gradient drawn is the library's, and the sum of its terms gives it.
        let grads = elements(&bwd, "grad");
        assert_eq!(grads.len(), 30);
        for (i, (a, t)) in grads.iter().enumerate() {
            assert_eq!(value(a), gx.data()[i], "{op} grad {i}");
            assert!(drawn_matches(t, gx.data()[i]), "{op} grad {i}: drawn {t}");
            let terms = &a["data-terms"];
            let sum: f64 = if terms.is_empty() {
                0.0
            } else {
                terms.split(';').map(|t| t.split_once(':').unwrap().1.parse::<f64>().unwrap()).sum()
            };
            assert!((sum - gx.data()[i]).abs() < 1e-12, "{op} grad {i}: terms sum to {sum}");
        }
        let deltas = elements(&bwd, "delta");
        assert_eq!(deltas.len(), y.data().len());
        assert!(deltas.iter().all(|(a, t)| value(a) == 1.0 && t == "1"));

        // The PNGs render at twice the SVG size, and are not blank.
        for (svg, part) in [(&fwd, "forward"), (&bwd, "backward")] {
            let png = std::fs::read(dir.path().join(format!("{stem}-{part}.png"))).unwrap();
            let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).unwrap();
            let attr = |name: &str| -> f64 {
                let at = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                svg[at..].split('"').next().unwrap().parse().unwrap()
            };
            assert_eq!((pixmap.width() as f64, pixmap.height() as f64), (2.0 * attr("width"), 2.0 * attr("height")));
            let pixels = pixmap.pixels();
            let ink = pixels.iter().filter(|p| p.red() < 200 || p.green() < 200 || p.blue() < 200).count();
            assert!(ink * 50 > pixels.len(), "{part}: only {ink} of {} pixels drawn", pixels.len());
            let colours: std::collections::BTreeSet<(u8, u8, u8)> =
                pixels.iter().map(|p| (p.red(), p.green(), p.blue())).collect();
            assert!(colours.len() > 20, "{part}: {} colours", colours.len());
        }
    }
}

#[test]
fn one_and_three_dims_adaptive_and_lp_draw() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().to_string();
    for args in [
        vec!["explain", "--op", "avg", "--kernel", "3", "--stride", "1", "--shape", "1,1,8", "--seed", "4"],
        vec!["explain", "--op", "adaptive-max", "--output-size", "2,3,2", "--shape", "1,1,3,5,4", "--seed", "2"],
        vec!["explain", "--op", "lp", "--kernel", "2", "--norm-type", "2", "--shape", "2,3,4,4", "--plane", "1,2"],
        vec![
            "explain",
            "--op",
            "max",
            "--kernel",
            "2",
            "--dilation",
            "2",
            "--ceil-mode",
            "--stride",
            "2",
            "--shape",
            "1,1,5,5",
        ],
    ] {
        let mut args = args.clone();
        args.extend(["--out", &d, "--plain"]);
        let run = poolgrad(&args);
        assert!(run.status.success(), "{args:?}: {}", String::from_utf8_lossy(&run.stderr));
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 8, "{names:?}");
    // The 3-D input is drawn as its slices.
    let svg = std::fs::read_to_string(dir.path().join("adaptive-max-o2x3x2-forward.svg")).unwrap();
    assert!(svg.contains("slice 2"), "3-D slices");
    assert_eq!(elements(&svg, "x").len(), 60);
}

#[test]
fn refuses_what_it_cannot_draw_legibly() {
    let dir = tempfile::tempdir().unwrap();
    let run = poolgrad(&[
        "explain",
        "--op",
        "max",
        "--kernel",
        "2",
        "--shape",
        "1,1,20,20",
        "--out",
        &dir.path().to_string_lossy(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("too large to draw legibly") && err.contains("limit 16"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The pictures of a configuration whose list flags are written once equal those of the
/// same numbers written per dim: every element but the title (which quotes the flags
/// as written) and the canvas width that the title sets.
#[test]
fn one_number_in_a_list_flag_draws_the_same_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [[&[&str]; 2]; 3] = [
        [
            &["--op", "lp", "--norm-type", "2", "--kernel", "2", "--stride", "2,3"],
            &["--op", "lp", "--norm-type", "2", "--kernel", "2,2", "--stride", "2,3"],
        ],
        [
            &["--op", "max", "--kernel", "3", "--stride", "2", "--padding", "1"],
            &["--op", "max", "--kernel", "3,3", "--stride", "2,2", "--padding", "1,1"],
        ],
        [
            &["--op", "avg", "--kernel", "3", "--padding", "1", "--count-include-pad", "false"],
            &["--op", "avg", "--kernel", "3,3", "--padding", "1,1", "--count-include-pad", "false"],
        ],
    ];
    for (i, pair) in cases.iter().enumerate() {
        let pictures: Vec<Vec<String>> = pair
            .iter()
            .enumerate()
            .map(|(j, flags)| {
                let out_dir = dir.path().join(format!("{i}-{j}"));
                let out = out_dir.to_string_lossy().into_owned();
                let mut args = vec!["explain", "--shape", "1,1,5,6", "--seed", "4", "--plain", "--out", &out];
                args.extend(flags.iter().copied());
                let run = poolgrad(&args);
                assert!(run.status.success(), "{args:?}: {}", String::from_utf8_lossy(&run.stderr));
                let mut svgs: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().path()).collect();
                svgs.sort();
                svgs.iter()
                    .map(|p| {
                        let svg = std::fs::read_to_string(p).unwrap();
                        let kept: Vec<&str> =
                            svg.lines().filter(|l| !l.starts_with("<svg") && !l.contains("kernel")).collect();
                        kept.join("\n")
                    })
                    .collect()
            })
            .collect();
        assert_eq!(pictures[0].len(), 2, "forward and backward pictures");
        assert!(pictures[0].iter().all(|svg| svg.contains("data-role")), "pictures with content");
        assert_eq!(pictures[0], pictures[1], "case {i}: {:?} vs {:?}", pair[0], pair[1]);
    }
}
