//! The `poolgrad` binary against the CLI contract: `run` round trips through .npy files,
//! every invalid request fails cleanly and writes nothing, `demo` and `bench` run.

use poolgrad::{AvgPool, Layout, MaxPool, Padding, PoolGeometry, Shape, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn poolgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poolgrad")).args(args).output().expect("binary runs")
}

/// Writes a .npy file by hand (so tests can also write odd ones).
fn npy_bytes(descr: &str, fortran: bool, shape: &[usize], payload: &[u8]) -> Vec<u8> {
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_text}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

fn write_f32(path: &Path, shape: &[usize], data: &[f32]) {
    let payload: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<f4", false, shape, &payload)).unwrap();
}

fn write_f64(path: &Path, shape: &[usize], data: &[f64]) {
    let payload: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy_bytes("<f8", false, shape, &payload)).unwrap();
}

fn read<T: npyz::Deserialize>(path: &Path) -> (Vec<usize>, Vec<T>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().iter().map(|&d| d as usize).collect();
    (shape, f.into_vec().unwrap())
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn p(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.p(name).to_string_lossy().into_owned()
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

#[test]
fn max_round_trip_matches_the_library() {
    let d = Dir::new();
    for (layout, dims) in [("ncx", [2usize, 3, 7, 6]), ("nxc", [2, 7, 6, 3])] {
        let x = values(252, 1);
        write_f32(&d.p("x.npy"), &dims, &x);
        let l: Layout = layout.parse().unwrap();
        let shape = Shape::from_dims(&dims, l).unwrap();
        let pool = MaxPool::new(PoolGeometry::new(&[3]).stride(&[2]).padding(Padding::Symmetric(vec![1])));
        let xt = Tensor::new(x, shape.clone(), l).unwrap();
        let want = pool.forward_with_indices(&xt.view()).unwrap();
        let gy = values(want.output.data().len(), 7);
        write_f32(&d.p("gy.npy"), &want.output.dims(), &gy);
        let out = poolgrad(&[
            "run",
            "--op",
            "max",
            "--kernel",
            "3",
            "--stride",
            "2",
            "--padding",
            "1",
            "--layout",
            layout,
            "--input",
            &d.s("x.npy"),
            "--output",
            &d.s("y.npy"),
            "--indices",
            &d.s("i.npy"),
            "--grad-output",
            &d.s("gy.npy"),
            "--grad-input",
            &d.s("gx.npy"),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (yshape, y) = read::<f32>(&d.p("y.npy"));
        assert_eq!(yshape, want.output.dims());
        assert_eq!(y, want.output.data());
        let (_, i) = read::<i64>(&d.p("i.npy"));
        assert_eq!(i, want.indices.data());
        let g = Tensor::new(gy, want.output.shape().clone(), l).unwrap();
        let want_gx = pool.backward_with_indices(&shape, &g.view(), &want.indices.view()).unwrap();
        let (gxshape, gx) = read::<f32>(&d.p("gx.npy"));
        assert_eq!(gxshape, dims);
        assert_eq!(gx, want_gx.data());
    }
}

#[test]
fn avg_round_trip_in_f64_with_every_avg_flag() {
    let d = Dir::new();
    let x: Vec<f64> = values(2 * 2 * 5 * 4 * 3, 3).into_iter().map(f64::from).collect();
    write_f64(&d.p("x.npy"), &[2, 2, 5, 4, 3], &x);
    let shape = Shape::new(2, 2, &[5, 4, 3]);
    for (flags, pool) in [
        (
            vec!["--count-include-pad", "false", "--ceil-mode"],
            AvgPool::new(
                PoolGeometry::new(&[2, 3, 2]).stride(&[2]).padding(Padding::Symmetric(vec![1])).ceil_mode(true),
            )
            .count_include_pad(false),
        ),
        (
            vec!["--divisor-override", "5"],
            AvgPool::new(PoolGeometry::new(&[2, 3, 2]).stride(&[2]).padding(Padding::Symmetric(vec![1])))
                .divisor_override(Some(5)),
        ),
    ] {
        let xt = Tensor::new(x.clone(), shape.clone(), Layout::ChannelsFirst).unwrap();
        let want = pool.forward_values(&xt.view()).unwrap();
        let gy: Vec<f64> = values(want.data().len(), 9).into_iter().map(f64::from).collect();
        write_f64(&d.p("gy.npy"), &want.dims(), &gy);
        let mut args = vec![
            "run",
            "--op",
            "avg",
            "--kernel",
            "2,3,2",
            "--stride",
            "2",
            "--padding",
            "1",
            "--input",
            "X",
            "--output",
            "Y",
            "--grad-output",
            "GY",
            "--grad-input",
            "GX",
        ];
        args.extend(flags);
        let (xs, ys, gys, gxs) = (d.s("x.npy"), d.s("y.npy"), d.s("gy.npy"), d.s("gx.npy"));
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| match a {
                "X" => xs.as_str(),
                "Y" => ys.as_str(),
                "GY" => gys.as_str(),
                "GX" => gxs.as_str(),
                other => other,
            })
            .collect();
        let out = poolgrad(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(read::<f64>(&d.p("y.npy")).1, want.data());
        let g = Tensor::new(gy, want.shape().clone(), Layout::ChannelsFirst).unwrap();
        assert_eq!(read::<f64>(&d.p("gx.npy")).1, pool.backward_from_shape(&shape, &g.view()).unwrap().data());
    }
}

#[test]
fn onnx_index_format_matches_the_conformance_case() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/onnx/test_maxpool_with_argmax_2d_precomputed_strides");
    let d = Dir::new();
    let out = poolgrad(&[
        "run",
        "--op",
        "max",
        "--kernel",
        "2",
        "--stride",
        "2",
        "--input",
        &case.join("input_0.npy").to_string_lossy(),
        "--output",
        &d.s("y.npy"),
        "--indices",
        &d.s("i.npy"),
        "--indices-format",
        "onnx-column-major",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read::<f32>(&d.p("y.npy")).1, read::<f32>(&case.join("output_0.npy")).1);
    assert_eq!(read::<i64>(&d.p("i.npy")).1, read::<i64>(&case.join("output_1.npy")).1);
}

#[test]
fn fortran_order_and_big_endian_inputs_are_read_correctly() {
    let d = Dir::new();
    let x = values(2 * 4 * 3, 5);
    write_f32(&d.p("c.npy"), &[1, 2, 4, 3], &x);
    // The same array in Fortran order: the first index varies fastest.
    let mut f = Vec::new();
    for k in 0..3 {
        for j in 0..4 {
            for c in 0..2 {
                f.extend_from_slice(&x[(c * 4 + j) * 3 + k].to_le_bytes());
            }
        }
    }
    std::fs::write(d.p("f.npy"), npy_bytes("<f4", true, &[1, 2, 4, 3], &f)).unwrap();
    let be: Vec<u8> = x.iter().flat_map(|v| v.to_be_bytes()).collect();
    std::fs::write(d.p("be.npy"), npy_bytes(">f4", false, &[1, 2, 4, 3], &be)).unwrap();
    let mut results = Vec::new();
    for input in ["c.npy", "f.npy", "be.npy"] {
        let out = poolgrad(&[
            "run",
            "--op",
            "max",
            "--kernel",
            "2",
            "--stride",
            "1",
            "--input",
            &d.s(input),
            "--output",
            &d.s("y.npy"),
        ]);
        assert!(out.status.success(), "{input}: {}", String::from_utf8_lossy(&out.stderr));
        results.push(read::<f32>(&d.p("y.npy")));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}

/// Runs an invalid request; checks the exit status, the one-line message and that no
/// output file (nor a temporary one) is left.
fn refuse(d: &Dir, args: &[&str], expect: &str) {
    let before = d.files();
    let out = poolgrad(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected, got {err}");
    assert!(err.contains(expect), "{args:?}: expected '{expect}' in: {err}");
    assert_eq!(d.files(), before, "{args:?}: files changed");
}

#[test]
fn every_invalid_request_fails_cleanly() {
    let d = Dir::new();
    write_f32(&d.p("x.npy"), &[1, 2, 4, 4], &values(32, 1));
    write_f32(&d.p("gy_bad.npy"), &[1, 2, 3, 3], &values(18, 2));
    write_f32(&d.p("x2d.npy"), &[4, 4], &values(16, 1));
    std::fs::write(d.p("x_i4.npy"), npy_bytes("<i4", false, &[1, 1, 2, 2], &[0; 16])).unwrap();
    std::fs::write(d.p("x_u2.npy"), npy_bytes("<u2", false, &[1, 1, 2, 2], &[0; 8])).unwrap();
    let full = std::fs::read(d.p("x.npy")).unwrap();
    std::fs::write(d.p("trunc.npy"), &full[..full.len() - 10]).unwrap();
    std::fs::write(d.p("garbage.npy"), b"this is not an npy file").unwrap();
    let x = d.s("x.npy");
    let y = d.s("y.npy");
    let base = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["run".into(), "--input".into(), x.clone(), "--output".into(), y.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (base(&["--op", "max", "--kernel", "0"]), "--kernel 0"),
        (base(&["--op", "max", "--kernel", "-2"]), "--kernel -2"),
        (base(&["--op", "max", "--kernel", "2", "--stride", "0"]), "--stride 0"),
        (base(&["--op", "max", "--kernel", "2", "--stride", "-1"]), "--stride -1"),
        (base(&["--op", "max", "--kernel", "2", "--dilation", "0"]), "--dilation 0"),
        (base(&["--op", "max", "--kernel", "2", "--padding", "-1"]), "--padding -1"),
        (base(&["--op", "max", "--kernel", "9"]), "output would be empty"),
        (base(&["--op", "avg", "--kernel", "2,2,2"]), "--kernel 2,2,2"),
        (base(&["--op", "max", "--kernel", "2", "--pads", "1,1"]), "--pads 1,1"),
        (base(&["--op", "max", "--kernel", "2", "--padding", "1", "--pads", "1,1,1,1"]), "--padding and --pads"),
        (
            base(&["--op", "max", "--kernel", "2", "--auto-pad", "same-upper", "--ceil-mode"]),
            "--auto-pad excludes --ceil-mode",
        ),
        (base(&["--op", "max", "--kernel", "2", "--count-include-pad", "false"]), "--count-include-pad does not apply"),
        (base(&["--op", "avg", "--kernel", "2", "--divisor-override", "0"]), "--divisor-override 0"),
        (
            base(&["--op", "adaptive-avg", "--kernel", "2", "--output-size", "2"]),
            "--kernel does not apply to --op adaptive-avg",
        ),
        (base(&["--op", "adaptive-max"]), "--output-size is required"),
        (base(&["--op", "adaptive-max", "--output-size", "0"]), "--output-size 0"),
        (base(&["--op", "global-max", "--stride", "2"]), "--stride does not apply"),
        (base(&["--op", "lp", "--kernel", "2"]), "--norm-type is required"),
        (base(&["--op", "lp", "--kernel", "2", "--norm-type", "0"]), "--norm-type 0"),
        (base(&["--op", "avg", "--kernel", "2", "--indices", "i.npy"]), "--indices"),
        (base(&["--op", "max", "--kernel", "2", "--grad-input", "gx.npy"]), "--grad-input needs --grad-output"),
        (base(&["--op", "max"]), "--kernel is required"),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "2".into(),
                "--input".into(),
                x.clone(),
                "--output".into(),
                y.clone(),
                "--grad-output".into(),
                d.s("gy_bad.npy"),
                "--grad-input".into(),
                d.s("gx.npy"),
            ],
            "--grad-output",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "2".into(),
                "--input".into(),
                d.s("x2d.npy"),
                "--output".into(),
                y.clone(),
            ],
            "at least one spatial dim",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "avg".into(),
                "--kernel".into(),
                "1".into(),
                "--input".into(),
                d.s("x_i4.npy"),
                "--output".into(),
                y.clone(),
            ],
            "dtype int32 is supported by the max ops only",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "1".into(),
                "--input".into(),
                d.s("x_i4.npy"),
                "--output".into(),
                y.clone(),
                "--grad-output".into(),
                d.s("gy_bad.npy"),
                "--grad-input".into(),
                d.s("gx.npy"),
            ],
            "gradients need a floating-point input",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "1".into(),
                "--input".into(),
                d.s("x_u2.npy"),
                "--output".into(),
                y.clone(),
            ],
            "uint16",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "1".into(),
                "--input".into(),
                d.s("trunc.npy"),
                "--output".into(),
                y.clone(),
            ],
            "trunc.npy",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "1".into(),
                "--input".into(),
                d.s("garbage.npy"),
                "--output".into(),
                y.clone(),
            ],
            "not a valid .npy",
        ),
        (
            vec![
                "run".into(),
                "--op".into(),
                "max".into(),
                "--kernel".into(),
                "1".into(),
                "--input".into(),
                d.s("missing.npy"),
                "--output".into(),
                y.clone(),
            ],
            "missing.npy",
        ),
    ];
    for (args, expect) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refuse(&d, &args, expect);
    }
}

#[test]
fn a_failure_after_some_outputs_are_ready_writes_none() {
    // The output can be computed, but the grad-input cannot be written: neither appears.
    let d = Dir::new();
    write_f32(&d.p("x.npy"), &[1, 1, 4, 4], &values(16, 1));
    write_f32(&d.p("gy.npy"), &[1, 1, 2, 2], &values(4, 2));
    let out = poolgrad(&[
        "run",
        "--op",
        "max",
        "--kernel",
        "2",
        "--input",
        &d.s("x.npy"),
        "--output",
        &d.s("y.npy"),
        "--grad-output",
        &d.s("gy.npy"),
        "--grad-input",
        &d.s("no/such/dir/gx.npy"),
    ]);
    assert!(!out.status.success());
    assert_eq!(d.files(), vec!["gy.npy".to_string(), "x.npy".to_string()]);
}

/// Every op of the contract, forward and backward, against the library.
#[test]
fn every_op_round_trips() {
    use poolgrad::{LpPool, Pooling};
    let d = Dir::new();
    let dims = [2usize, 3, 7, 6];
    let x = values(252, 11);
    write_f32(&d.p("x.npy"), &dims, &x);
    let shape = Shape::from_dims(&dims, Layout::ChannelsFirst).unwrap();
    let xt = Tensor::new(x.clone(), shape.clone(), Layout::ChannelsFirst).unwrap();
    let geometry = PoolGeometry::new(&[3]).stride(&[2]);
    type Pass = Box<dyn Fn(&Tensor<f32>) -> Tensor<f32>>;
    let cases: Vec<(Vec<&str>, Pass, Pass)> = vec![
        (
            vec!["--op", "lp", "--kernel", "3", "--stride", "2", "--norm-type", "2"],
            Box::new({
                let g = geometry.clone();
                move |x| LpPool::new(g.clone(), 2.0).forward(&x.view()).unwrap()
            }),
            Box::new({
                let g = geometry.clone();
                move |gy| {
                    let p = LpPool::new(g.clone(), 2.0);
                    p.backward(&values_tensor().view(), &gy.view()).unwrap()
                }
            }),
        ),
        (
            vec!["--op", "adaptive-max", "--output-size", "4,5"],
            Box::new(|x| MaxPool::adaptive(&[4, 5]).forward(&x.view()).unwrap()),
            Box::new(|gy| MaxPool::adaptive(&[4, 5]).backward(&values_tensor().view(), &gy.view()).unwrap()),
        ),
        (
            vec!["--op", "adaptive-avg", "--output-size", "3"],
            Box::new(|x| AvgPool::adaptive(&[3]).forward(&x.view()).unwrap()),
            Box::new(|gy| AvgPool::adaptive(&[3]).backward(&values_tensor().view(), &gy.view()).unwrap()),
        ),
        (
            vec!["--op", "global-max"],
            Box::new(|x| MaxPool::global().forward(&x.view()).unwrap()),
            Box::new(|gy| MaxPool::global().backward(&values_tensor().view(), &gy.view()).unwrap()),
        ),
        (
            vec!["--op", "global-avg"],
            Box::new(|x| AvgPool::global().forward(&x.view()).unwrap()),
            Box::new(|gy| AvgPool::global().backward(&values_tensor().view(), &gy.view()).unwrap()),
        ),
    ];
    for (flags, forward, backward) in cases {
        let y = forward(&xt);
        let gy = values(y.data().len(), 5);
        write_f32(&d.p("gy.npy"), &y.dims(), &gy);
        let mut args = vec!["run".to_string(), "--input".to_string(), d.s("x.npy")];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(
            ["--output", &d.s("y.npy"), "--grad-output", &d.s("gy.npy"), "--grad-input", &d.s("gx.npy")]
                .iter()
                .map(|s| s.to_string()),
        );
        let out = poolgrad(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
        let (yshape, got) = read::<f32>(&d.p("y.npy"));
        assert_eq!(yshape, y.dims(), "{flags:?}");
        assert_eq!(got, y.data(), "{flags:?}");
        let g = Tensor::new(gy, y.shape().clone(), Layout::ChannelsFirst).unwrap();
        assert_eq!(read::<f32>(&d.p("gx.npy")).1, backward(&g).data(), "{flags:?}");
    }
}

/// The input of `every_op_round_trips`.
fn values_tensor() -> Tensor<f32> {
    Tensor::new(values(252, 11), Shape::new(2, 3, &[7, 6]), Layout::ChannelsFirst).unwrap()
}

#[test]
fn integer_and_half_inputs() {
    let d = Dir::new();
    // uint8 through the ONNX conformance case, natively.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/onnx/test_maxpool_2d_uint8");
    let out = poolgrad(&[
        "run",
        "--op",
        "max",
        "--kernel",
        "5",
        "--stride",
        "1",
        "--pads",
        "2,2,2,2",
        "--input",
        &case.join("input_0.npy").to_string_lossy(),
        "--output",
        &d.s("y.npy"),
        "--indices",
        &d.s("i.npy"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read::<u8>(&d.p("y.npy")).1, read::<u8>(&case.join("output_0.npy")).1);
    // int32 and float16 keep their dtype.
    let ints: Vec<i32> = vec![3, -7, 5, 5, 0, 9, -1, 2];
    std::fs::write(
        d.p("i32.npy"),
        npy_bytes("<i4", false, &[1, 2, 4], &ints.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()),
    )
    .unwrap();
    let out = poolgrad(&[
        "run",
        "--op",
        "global-max",
        "--input",
        &d.s("i32.npy"),
        "--output",
        &d.s("y.npy"),
        "--indices",
        &d.s("i.npy"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read::<i32>(&d.p("y.npy")), (vec![1, 2, 1], vec![5, 9]));
    assert_eq!(read::<i64>(&d.p("i.npy")).1, vec![2, 1]);
    let halves: Vec<poolgrad::f16> = [1.0f32, 2.5, -3.0, 4.0].iter().map(|&v| poolgrad::f16::from_f32(v)).collect();
    std::fs::write(
        d.p("f16.npy"),
        npy_bytes("<f2", false, &[1, 1, 4], &halves.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()),
    )
    .unwrap();
    let out = poolgrad(&["run", "--op", "avg", "--kernel", "2", "--input", &d.s("f16.npy"), "--output", &d.s("y.npy")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, y) = read::<poolgrad::f16>(&d.p("y.npy"));
    assert_eq!(y.iter().map(|v| v.to_f32()).collect::<Vec<_>>(), vec![1.75, 0.5]);
}

#[test]
fn demo_runs_and_checks_itself() {
    let d = Dir::new();
    let out = poolgrad(&["demo", "--plain", "--out", &d.s("pictures")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" check: central finite differences agree").count(), 4, "{text}");
    assert!(text.contains("∂L/∂x[1][1] = δ[0][0] + δ[0][1] + δ[1][1] = 8"), "{text}");
    assert!(text.contains("A tie"));
    // Forward and backward pictures, SVG and PNG, for each of the 5 examples.
    let pictures = std::fs::read_dir(d.p("pictures")).unwrap().count();
    assert_eq!(pictures, 5 * 2 * 2);
}

#[test]
fn bench_json_follows_the_contract() {
    let out = poolgrad(&[
        "bench",
        "--op",
        "max",
        "--kernel",
        "3",
        "--stride",
        "2",
        "--padding",
        "1",
        "--shape",
        "2,4,16,16",
        "--threads",
        "1",
        "--min-time",
        "0",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2);
    for (line, pass) in lines.iter().zip(["forward", "backward"]) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["op"], "max");
        assert_eq!(v["pass"], pass);
        assert_eq!(v["shape"], serde_json::json!([2, 4, 16, 16]));
        assert_eq!(v["layout"], "ncx");
        assert_eq!(v["dtype"], "f32");
        assert_eq!(v["threads"], 1);
        assert!(v["runs"].as_u64().unwrap() >= 5);
        assert!(v["median_s"].as_f64().unwrap() >= v["min_s"].as_f64().unwrap());
        // forward: x (2048 f32) + y (512 f32) + indices (512 i64); backward: gy + indices + gx.
        assert_eq!(v["bytes"], 2048 * 4 + 512 * 12);
        let gbps = v["bytes"].as_f64().unwrap() / v["median_s"].as_f64().unwrap() / 1e9;
        assert!((v["gbps"].as_f64().unwrap() - gbps).abs() <= 1e-3 * gbps.max(1.0));
    }
}

#[test]
fn bench_extensions_compact_argmax_and_isa() {
    let out = poolgrad(&[
        "bench",
        "--op",
        "max",
        "--kernel",
        "3",
        "--stride",
        "2",
        "--padding",
        "1",
        "--shape",
        "2,4,16,16",
        "--threads",
        "1",
        "--min-time",
        "0",
        "--json",
        "--argmax",
        "compact",
        "--isa",
        "portable",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["argmax"], "compact");
        // One byte of state per output instead of eight.
        assert_eq!(v["bytes"], 2048 * 4 + 512 * 5);
    }
    // Windows of more than 256 taps have no compact state: a clear error.
    let out = poolgrad(&[
        "bench",
        "--op",
        "max",
        "--kernel",
        "17",
        "--shape",
        "1,1,20,20",
        "--min-time",
        "0",
        "--argmax",
        "compact",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 256"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bench_reuses_outputs_for_every_pooling_kind() {
    for op in ["max", "avg", "lp"] {
        let mut args = vec!["bench", "--op", op, "--kernel", "2", "--shape", "2,4,8,8", "--min-time", "0", "--json"];
        args.push("--reuse-outputs");
        if op == "lp" {
            args.extend(["--norm-type", "2"]);
        }
        let out = poolgrad(&args);
        assert!(out.status.success(), "{op}: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(lines.len(), 2, "{op}");
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!((v["op"].as_str(), v["outputs"].as_str()), (Some(op), Some("reused")), "{line}");
        }
    }
}

/// Runs `poolgrad run` with `flags` on `x.npy` in `d` and returns the bytes of every file
/// it writes (output, indices for the max ops, grad-input).
fn run_outputs(d: &Dir, flags: &[String], is_max: bool) -> Vec<Vec<u8>> {
    let mut args: Vec<String> = ["run", "--input", &d.s("x.npy"), "--output", &d.s("y.npy")].map(String::from).into();
    args.extend(flags.iter().cloned());
    if is_max {
        args.extend(["--indices".to_string(), d.s("i.npy")]);
    }
    let out = poolgrad(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
    // The grad-output: the output's shape, distinct values.
    let (shape, y) = read::<f64>(&d.p("y.npy"));
    let gy: Vec<f64> = (0..y.len()).map(|i| ((i * 37) % 23) as f64 * 0.25 - 2.0).collect();
    write_f64(&d.p("gy.npy"), &shape, &gy);
    args.extend(["--grad-output", &d.s("gy.npy"), "--grad-input", &d.s("gx.npy")].map(String::from));
    let out = poolgrad(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut files = vec![std::fs::read(d.p("y.npy")).unwrap(), std::fs::read(d.p("gx.npy")).unwrap()];
    if is_max {
        files.push(std::fs::read(d.p("i.npy")).unwrap());
    }
    files
}

#[test]
fn one_number_in_a_list_flag_means_every_dim() {
    // (op, flags with their per-dim value, extra flags): each list flag written once must
    // give the same files, byte for byte, as the same number repeated per dim.
    type Case<'a> = (&'a str, &'a [(&'a str, usize)], &'a [&'a str]);
    let cases: [Case; 7] = [
        ("max", &[("--kernel", 3), ("--stride", 2), ("--padding", 1), ("--dilation", 2)], &["--ceil-mode"]),
        ("max", &[("--kernel", 3), ("--stride", 2), ("--pads", 1), ("--dilation", 2)], &[]),
        ("avg", &[("--kernel", 3), ("--stride", 2), ("--padding", 1), ("--dilation", 2)], &["--ceil-mode"]),
        ("avg", &[("--kernel", 3), ("--stride", 1), ("--pads", 1)], &["--count-include-pad", "false"]),
        ("lp", &[("--kernel", 2), ("--stride", 3)], &["--norm-type", "2"]),
        ("lp", &[("--kernel", 3), ("--stride", 2), ("--padding", 1), ("--dilation", 2)], &["--norm-type", "3"]),
        ("adaptive-max", &[("--output-size", 4)], &[]),
    ];
    let d = Dir::new();
    for dims in [vec![2usize, 3, 9, 7], vec![1, 2, 7, 5, 9]] {
        let rank = dims.len() - 2;
        let n: usize = dims.iter().product();
        // Positive values, so PyTorch's LP formula stays real.
        let x: Vec<f64> = (0..n).map(|i| ((i * 2654435761) % 97) as f64 * 0.125 + 0.5).collect();
        write_f64(&d.p("x.npy"), &dims, &x);
        let mut all = cases.to_vec();
        all.push(("adaptive-avg", &[("--output-size", 3)], &[]));
        for (op, lists, extra) in all {
            let written = |once: Option<&str>| -> Vec<String> {
                let mut flags = vec!["--op".to_string(), op.to_string()];
                for &(flag, value) in lists {
                    let count = match (flag, once == Some(flag)) {
                        (_, true) => 1,
                        ("--pads", false) => 2 * rank,
                        _ => rank,
                    };
                    flags.push(flag.to_string());
                    flags.push(vec![value.to_string(); count].join(","));
                }
                flags.extend(extra.iter().map(|s| s.to_string()));
                flags
            };
            let is_max = op.contains("max");
            let baseline = run_outputs(&d, &written(None), is_max);
            for &(flag, _) in lists {
                let once = run_outputs(&d, &written(Some(flag)), is_max);
                assert!(once == baseline, "{op} {rank}-D: {flag} written once differs from {flag} per dim");
            }
        }
    }
}

#[test]
fn every_onnx_lppool_case_runs_through_the_cli() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/onnx");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let d = Dir::new();
    let mut passed = 0;
    for case in manifest["cases"].as_array().unwrap().iter().filter(|c| c["op_type"] == "LpPool") {
        let id = case["id"].as_str().unwrap();
        let attrs = &case["attributes"];
        let list = |key: &str| {
            attrs.get(key).map(|v| v.as_array().unwrap().iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))
        };
        let kernel = list("kernel_shape").unwrap();
        let rank = attrs["kernel_shape"].as_array().unwrap().len();
        // ONNX's defaults: stride 1, no padding.
        let mut args: Vec<String> = vec![
            "run".into(),
            "--op".into(),
            "lp".into(),
            "--lp-formula".into(),
            "onnx".into(),
            "--norm-type".into(),
            attrs["p"].to_string(),
            "--kernel".into(),
            kernel,
            "--stride".into(),
            list("strides").unwrap_or(vec!["1"; rank].join(",")),
        ];
        if let Some(d) = list("dilations") {
            args.extend(["--dilation".into(), d]);
        }
        match attrs.get("auto_pad").and_then(|v| v.as_str()) {
            Some(mode) => args.extend(["--auto-pad".into(), mode.to_lowercase().replace('_', "-")]),
            None => args.extend(["--pads".into(), list("pads").unwrap_or(vec!["0"; 2 * rank].join(","))]),
        }
        let input = root.join(id).join("input_0.npy");
        args.extend(["--input".into(), input.to_string_lossy().into_owned(), "--output".into(), d.s("y.npy")]);
        let out = poolgrad(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
        let (shape, got) = read::<f32>(&d.p("y.npy"));
        let (want_shape, want) = read::<f32>(&root.join(id).join("output_0.npy"));
        assert_eq!(shape, want_shape, "{id}: shape");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{id}: element {i}: got {g}, want {w}");
        }
        passed += 1;
    }
    assert_eq!(passed, 8, "the ONNX suite has 8 LpPool cases");
}

#[test]
fn lp_formula_torch_refuses_padding_and_dilation() {
    let d = Dir::new();
    write_f32(&d.p("x.npy"), &[1, 1, 4, 6], &values(24, 3));
    for extra in [["--padding", "1"], ["--dilation", "2"], ["--pads", "0,1,0,0"]] {
        let mut args = vec!["run", "--op", "lp", "--norm-type", "2", "--kernel", "2", "--lp-formula", "torch"];
        args.extend(extra);
        let input = d.s("x.npy");
        let output = d.s("y.npy");
        args.extend(["--input", &input, "--output", &output]);
        let out = poolgrad(&args);
        assert!(!out.status.success(), "{extra:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--lp-formula torch") && err.lines().count() == 1, "{extra:?}: {err}");
        assert!(!d.p("y.npy").exists(), "{extra:?}: an output was written");
    }
    // The same geometry with the ONNX formula runs.
    let input = d.s("x.npy");
    let output = d.s("y.npy");
    let out = poolgrad(&[
        "run",
        "--op",
        "lp",
        "--norm-type",
        "2",
        "--kernel",
        "2",
        "--padding",
        "1",
        "--lp-formula",
        "onnx",
        "--input",
        &input,
        "--output",
        &output,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn lp_kernel_written_once_matches_pytorch() {
    // PyTorch 2.15: lp_pool2d(x, 2, 2, stride=(2, 3)) on x = arange(24).reshape(1, 1, 4, 6)
    // = sqrt of the 2x2 window sums of squares (K = 4 cells, not 2).
    let d = Dir::new();
    let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
    write_f32(&d.p("x.npy"), &[1, 1, 4, 6], &x);
    let (input, output) = (d.s("x.npy"), d.s("y.npy"));
    let out = poolgrad(&[
        "run",
        "--op",
        "lp",
        "--norm-type",
        "2",
        "--kernel",
        "2",
        "--stride",
        "2,3",
        "--input",
        &input,
        "--output",
        &output,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (shape, got) = read::<f32>(&d.p("y.npy"));
    assert_eq!(shape, vec![1, 1, 2, 2]);
    // Windows (rows 0-1, cols 0-1), (0-1, 3-4), (2-3, 0-1), (2-3, 3-4), summed by hand.
    let want = [
        (0.0f32 + 1.0 + 36.0 + 49.0),
        (9.0 + 16.0 + 81.0 + 100.0),
        (144.0 + 169.0 + 324.0 + 361.0),
        (225.0 + 256.0 + 441.0 + 484.0),
    ]
    .map(f32::sqrt);
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 * w, "got {got:?}, want {want:?}");
    }
}

/// Runs `poolgrad` under an address-space limit of `limit_mb` MiB (`ulimit -v`), as a
/// machine with that much memory would.
#[cfg(target_os = "linux")]
fn poolgrad_limited(limit_mb: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {} && exec \"$0\" \"$@\"", limit_mb * 1024))
        .arg(env!("CARGO_BIN_EXE_poolgrad"))
        .args(args)
        .output()
        .expect("sh runs")
}

#[cfg(target_os = "linux")]
#[test]
fn requests_too_big_for_memory_are_clear_errors() {
    let d = Dir::new();
    write_f32(&d.p("x.npy"), &[1, 1, 4, 4], &values(16, 1));
    write_f32(&d.p("x1.npy"), &[1, 1, 4], &values(4, 1));
    let (x, x1, y) = (d.s("x.npy"), d.s("x1.npy"), d.s("y.npy"));
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // 4 GB of random input for bench.
        ("bench input", vec!["bench", "--op", "max", "--kernel", "2", "--shape", "1000,1000,40,25", "--min-time", "0"]),
        // 12.8 GB of generated input for explain.
        ("explain input", vec!["explain", "--op", "max", "--kernel", "2", "--shape", "10000,10000,4,4", "--plain"]),
        // A 3.6 GB output from a 64-byte input.
        ("run output", vec!["run", "--op", "adaptive-avg", "--output-size", "30000", "--input", &x, "--output", &y]),
        // An 8 GB window table for a 1-D adaptive output of 10^9 cells.
        (
            "window table",
            vec!["run", "--op", "adaptive-max", "--output-size", "1000000000", "--input", &x1, "--output", &y],
        ),
    ];
    for (what, args) in cases {
        let out = poolgrad_limited(2048, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code().is_some_and(|c| c != 0), "{what}: {:?} {err}", out.status);
        assert!(err.contains("out of memory"), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(!err.contains("panicked") && !err.contains("memory allocation of"), "{what}: {err}");
        assert!(!d.p("y.npy").exists(), "{what}: an output file was left");
    }
    // The same limit leaves room for ordinary work.
    let out = poolgrad_limited(2048, &["run", "--op", "max", "--kernel", "2", "--input", &x, "--output", &y]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_npy_header_claiming_more_than_the_file_is_refused() {
    let d = Dir::new();
    // 10^12 float32 elements claimed by a file of a few dozen bytes.
    std::fs::write(d.p("x.npy"), npy_bytes("<f4", false, &[1000, 1000, 1000, 1000], &[0u8; 16])).unwrap();
    let (x, y) = (d.s("x.npy"), d.s("y.npy"));
    let out = poolgrad(&["run", "--op", "max", "--kernel", "2", "--input", &x, "--output", &y]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--input") && err.contains("truncated"), "{err}");
    assert!(!d.p("y.npy").exists());
}

#[test]
fn a_flag_value_with_newlines_still_gives_one_error_line() {
    // Found by fuzzing: the value was echoed with its newlines, making several lines.
    let d = Dir::new();
    write_f32(&d.p("x.npy"), &[1, 1, 4, 4], &values(16, 1));
    refuse(&d, &["run", "--op", "max", "--kernel", "2", "--stride", "1\n\n]\n", "--input", &d.s("x.npy")], "--stride");
}

/// A reader that stops early (`poolgrad demo | head -1`) ends the command quietly:
/// exit 0, no panic message (it used to panic in `println!` on the broken pipe).
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolgrad"))
        .args(["demo", "--out", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    // Read the first line, then close the pipe while the demo still has pages to print.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}
