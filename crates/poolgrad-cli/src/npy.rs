//! `.npy` reading and atomic writing.
//!
//! Reads versions 1.0–3.0, either byte order, C or Fortran order (Fortran data is
//! reordered to C order, never misread). Writes version 1.0, little-endian, C order, and
//! only after every output has been computed: each file goes to a temporary name beside
//! its destination and all are renamed at the end, so a failed run leaves no output file.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// The element types the CLI moves through `.npy` files.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F16(Vec<half::f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Data {
    /// Number of elements.
    pub fn element_count(&self) -> usize {
        match self {
            Data::F16(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// Bytes per element.
    pub fn item_size(&self) -> usize {
        match self {
            Data::U8(_) | Data::I8(_) => 1,
            Data::F16(_) => 2,
            Data::F32(_) | Data::I32(_) => 4,
            Data::F64(_) | Data::I64(_) => 8,
        }
    }

    /// numpy's name for the element type.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            Data::F16(_) => "float16",
            Data::F32(_) => "float32",
            Data::F64(_) => "float64",
            Data::U8(_) => "uint8",
            Data::I8(_) => "int8",
            Data::I32(_) => "int32",
            Data::I64(_) => "int64",
        }
    }
}

/// An array: its dims and its elements in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub dims: Vec<usize>,
    pub data: Data,
}

/// numpy's name for a type string such as `<f4`.
fn dtype_name(descr: &str) -> String {
    let kind = descr.trim_start_matches(['<', '>', '|', '=']);
    match kind {
        "f2" => "float16".into(),
        "f4" => "float32".into(),
        "f8" => "float64".into(),
        "u1" => "uint8".into(),
        "i1" => "int8".into(),
        "i2" => "int16".into(),
        "u2" => "uint16".into(),
        "i4" => "int32".into(),
        "u4" => "uint32".into(),
        "i8" => "int64".into(),
        "u8" => "uint64".into(),
        "b1" => "bool".into(),
        _ => format!("'{descr}'"),
    }
}

/// Reads `path`; `flag` names the command-line flag in error messages.
pub fn read(path: &Path, flag: &str) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))?;
    parse(&bytes, &format!("{flag} {}", path.display()))
}

/// Parses the bytes of a `.npy` file; `name` names it in error messages. Any bytes give
/// an array or an error, and nothing larger than the bytes is allocated for the data.
pub fn parse(bytes: &[u8], name: &str) -> Result<Array> {
    let context = || name.to_string();
    check_header(bytes).with_context(context)?;
    let file = npyz::NpyFile::new(bytes).map_err(|e| anyhow!("not a valid .npy file ({e})")).with_context(context)?;
    let descr = match file.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => return Err(anyhow!("structured dtype {other:?} is not supported")).with_context(context),
    };
    let dims: Vec<usize> = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("a dimension does not fit in memory"))
        .with_context(context)?;
    let fortran = file.order() == npyz::Order::Fortran && dims.len() > 1;
    // The data can be no larger than the file: refuse a header that claims more before
    // anything is allocated for it.
    let item = match dtype_name(&descr).as_str() {
        "float16" => 2,
        "float32" | "int32" => 4,
        "float64" | "int64" => 8,
        _ => 1,
    };
    let claimed = dims.iter().try_fold(item, |n: usize, &d| n.checked_mul(d));
    if claimed.is_none_or(|n| n > bytes.len()) {
        bail!(
            "{}: truncated or malformed: the header claims shape {dims:?}, more data than the file's {} bytes",
            context(),
            bytes.len()
        );
    }
    let truncated = |e: std::io::Error| anyhow!("truncated or malformed data for shape {dims:?} ({e})");
    macro_rules! load {
        ($variant:ident, $t:ty) => {
            Data::$variant(
                reorder(file.into_vec::<$t>().map_err(truncated).with_context(context)?, &dims, fortran)
                    .with_context(context)?,
            )
        };
    }
    let data = match dtype_name(&descr).as_str() {
        "float16" => load!(F16, half::f16),
        "float32" => load!(F32, f32),
        "float64" => load!(F64, f64),
        "uint8" => load!(U8, u8),
        "int8" => load!(I8, i8),
        "int32" => load!(I32, i32),
        "int64" => load!(I64, i64),
        name => bail!("{}: dtype {name} is not supported (use float16, float32, float64, or uint8, int8, int32, int64 for the max ops)", context()),
    };
    Ok(Array { dims, data })
}

/// Refuses a header that is not a flat dict before the header parser sees it: nested
/// brackets make that parser backtrack for ages (found by fuzzing: a 180-byte file with
/// 100 `{` took over 10 s). numpy writes `{'descr': ..., 'fortran_order': ..., 'shape':
/// (...), }`: one pair of braces, one of parentheses, no brackets.
fn check_header(bytes: &[u8]) -> Result<()> {
    let Some(rest) = bytes.strip_prefix(b"\x93NUMPY") else {
        bail!("not a valid .npy file (no \\x93NUMPY magic)");
    };
    let (len, start): (usize, usize) = match rest.first() {
        Some(1) if rest.len() >= 4 => (u16::from_le_bytes([rest[2], rest[3]]) as usize, 10),
        Some(2 | 3) if rest.len() >= 6 => (u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize, 12),
        _ => bail!("not a valid .npy file (unknown version or truncated header)"),
    };
    let header = bytes.get(start..start.saturating_add(len)).unwrap_or(&bytes[start.min(bytes.len())..]);
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'{') > 1 || count(b'}') > 1 || count(b'(') > 1 || count(b')') > 1 || count(b'[') > 0 {
        bail!("not a valid .npy file (the header is not a flat dict of descr, fortran_order and shape)");
    }
    // The header parser multiplies the dims in u64 without a check (found by fuzzing):
    // refuse a shape whose element count does not fit first.
    let text = String::from_utf8_lossy(header);
    if let (Some(open), Some(close)) = (text.find('('), text.find(')')) {
        let dims = text.get(open + 1..close).unwrap_or_default();
        let mut count = Some(1u64);
        for d in dims.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let Ok(d) = d.parse::<u64>() else {
                bail!("not a valid .npy file (shape ({dims}) is not a tuple of integers)");
            };
            count = count.and_then(|n| n.checked_mul(d));
        }
        if count.is_none() {
            bail!("not a valid .npy file (shape ({dims}) has more elements than fit in 64 bits)");
        }
    }
    Ok(())
}

/// Reorders Fortran-order data to C order (a no-op for C order).
fn reorder<T: Copy>(data: Vec<T>, dims: &[usize], fortran: bool) -> Result<Vec<T>> {
    if !fortran {
        return Ok(data);
    }
    // Column-major strides: the first dim varies fastest.
    let mut strides = vec![1usize; dims.len()];
    for d in 1..dims.len() {
        strides[d] = strides[d - 1] * dims[d - 1];
    }
    let mut index = vec![0usize; dims.len()];
    let mut out = Vec::new();
    crate::memory::reserve(&mut out, data.len(), "the reordered input")?;
    for _ in 0..data.len() {
        out.push(data[index.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

fn encode(array: &Array, out: &mut Vec<u8>) -> std::io::Result<()> {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = array.dims.iter().map(|&d| d as u64).collect();
    macro_rules! write_as {
        ($t:ty, $values:expr) => {{
            let mut w = npyz::WriteOptions::<$t>::new().default_dtype().shape(&shape).writer(&mut *out).begin_nd()?;
            w.extend($values.iter().copied())?;
            w.finish()
        }};
    }
    match &array.data {
        Data::F16(v) => write_as!(half::f16, v),
        Data::F32(v) => write_as!(f32, v),
        Data::F64(v) => write_as!(f64, v),
        Data::U8(v) => write_as!(u8, v),
        Data::I8(v) => write_as!(i8, v),
        Data::I32(v) => write_as!(i32, v),
        Data::I64(v) => write_as!(i64, v),
    }
}

/// Writes every `(path, array)` or none: all go to temporary files first, then are
/// renamed into place. On failure the temporary files are removed.
pub fn write_all(outputs: &[(PathBuf, &str, Array)]) -> Result<()> {
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = (|| -> Result<()> {
        for (path, flag, array) in outputs {
            let mut bytes = Vec::new();
            let payload = array.data.element_count().saturating_mul(array.data.item_size());
            crate::memory::reserve(&mut bytes, payload.saturating_add(128), "an encoded output")
                .with_context(|| format!("{flag} {}", path.display()))?;
            encode(array, &mut bytes).with_context(|| format!("{flag} {}: encoding", path.display()))?;
            let name = path.file_name().ok_or_else(|| anyhow!("{flag} {}: not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(".{}.tmp-poolgrad-{}", name.to_string_lossy(), std::process::id()));
            std::fs::write(&tmp, &bytes).with_context(|| format!("{flag} {}", path.display()))?;
            staged.push((tmp, path.clone()));
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    for (i, (tmp, dest)) in staged.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, dest) {
            for (tmp, _) in &staged[i..] {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e).with_context(|| format!("{}", dest.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_reordered() {
        // A 2x3 array [[0, 1, 2], [3, 4, 5]] stored column-major.
        let f = vec![0, 3, 1, 4, 2, 5];
        assert_eq!(reorder(f, &[2, 3], true).unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn nested_headers_are_refused_at_once() {
        // Found by fuzzing: 100 nested braces made the header parser backtrack for > 10 s.
        let mut file = b"\x93NUMPY\x01\x00\x76\x00{'descr': ".to_vec();
        file.extend([b'{'; 100]);
        file.extend(b"'<f4', 'fortran_order': False, 'shape': (2,), }\n");
        let start = std::time::Instant::now();
        let err = parse(&file, "x.npy").unwrap_err();
        assert!(format!("{err:#}").contains("flat dict"), "{err:#}");
        assert!(start.elapsed().as_secs() < 1);
    }

    #[test]
    fn dtype_names() {
        assert_eq!(dtype_name("<f2"), "float16");
        assert_eq!(dtype_name("|u1"), "uint8");
        assert_eq!(dtype_name(">i4"), "int32");
    }
}
