//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the checkout (where CI puts it).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// An array read from a `.npy` file, converted to f64 (exact for f32 and small ints).
pub struct Npy {
    pub shape: Vec<usize>,
    pub descr: String,
    pub data: Vec<f64>,
    pub ints: Vec<i64>,
}

pub fn read_npy(path: &std::path::Path) -> Npy {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = file.shape().iter().map(|&d| d as usize).collect();
    let descr = match file.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => panic!("unexpected dtype {other:?}"),
    };
    assert_eq!(file.order(), npyz::Order::C, "{}", path.display());
    let (data, ints): (Vec<f64>, Vec<i64>) = match descr.as_str() {
        "<f4" => (file.into_vec::<f32>().unwrap().into_iter().map(f64::from).collect(), vec![]),
        "<f8" => (file.into_vec::<f64>().unwrap(), vec![]),
        "|u1" => {
            let v = file.into_vec::<u8>().unwrap();
            (v.iter().map(|&x| x as f64).collect(), v.iter().map(|&x| x as i64).collect())
        }
        "<i8" => {
            let v = file.into_vec::<i64>().unwrap();
            (v.iter().map(|&x| x as f64).collect(), v)
        }
        other => panic!("unsupported dtype {other}"),
    };
    Npy { shape, descr, data, ints }
}

/// Whether two values agree: equal, both NaN, or within `rel` relative tolerance.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= rel * b.abs().max(1.0)
}

/// Asserts elementwise agreement with a message naming the first mismatch.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| !close(got[i], want[i], rel)) {
        panic!("{what}: element {i}: got {} want {} (rel tol {rel})", got[i], want[i]);
    }
}

/// A JSON array of floats, where NaN and infinities are the strings "nan", "inf", "-inf".
pub fn json_floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            serde_json::Value::String(s) => match s.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => panic!("bad float {other}"),
            },
            n => n.as_f64().unwrap(),
        })
        .collect()
}

/// A JSON array of sizes.
pub fn json_usizes(v: &serde_json::Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}
