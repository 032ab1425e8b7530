//! NumPy arrays in and out: dtype checks, borrowing without a copy where the memory is
//! contiguous, and handing results back without a copy.

use super::{compute, py_err, view};
use numpy::{
    dtype, Element as NumpyElement, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn,
    PyUntypedArray, PyUntypedArrayMethods,
};
use poolgrad::{Layout, MaxElement, MaxPool, Tensor};
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::ops::Deref;

/// An element type as NumPy stores it (bf16 travels as its 16 bits in a uint16 array).
pub trait Wire: NumpyElement + bytemuck::Pod + Send + Sync {}
impl<W: NumpyElement + bytemuck::Pod + Send + Sync> Wire for W {}

/// The float types poolgrad computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatKind {
    F16,
    Bf16,
    F32,
    F64,
}

impl FloatKind {
    pub fn name(self) -> &'static str {
        match self {
            FloatKind::F16 => "float16",
            FloatKind::Bf16 => "bfloat16",
            FloatKind::F32 => "float32",
            FloatKind::F64 => "float64",
        }
    }
}

fn untyped<'a, 'py>(a: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    a.cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("expected a NumPy array, got {}", type_name(a))))
}

fn type_name(a: &Bound<'_, PyAny>) -> String {
    a.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "an object".into())
}

fn is<T: NumpyElement>(a: &Bound<'_, PyUntypedArray>) -> bool {
    a.dtype().is_equiv_to(&dtype::<T>(a.py()))
}

/// The float kind of an array (`bf16`: the array holds bfloat16 bits as uint16).
pub fn float_kind(a: &Bound<'_, PyAny>, bf16: bool) -> PyResult<FloatKind> {
    let arr = untyped(a)?;
    let kind = if bf16 {
        is::<u16>(arr).then_some(FloatKind::Bf16)
    } else if is::<f32>(arr) {
        Some(FloatKind::F32)
    } else if is::<f64>(arr) {
        Some(FloatKind::F64)
    } else if is::<half::f16>(arr) {
        Some(FloatKind::F16)
    } else {
        None
    };
    kind.ok_or_else(|| {
        let want = if bf16 { "uint16 (bfloat16 bits)" } else { "float16, float32 or float64" };
        PyTypeError::new_err(format!("unsupported dtype {}: expected {want}", arr.dtype()))
    })
}

/// An array's elements, borrowed in place when they are contiguous in C order, copied in
/// C order otherwise (strided views, Fortran order).
pub struct Held<'py, W: Wire> {
    array: PyReadonlyArrayDyn<'py, W>,
    copy: Option<Vec<W>>,
}

impl<W: Wire> Deref for Held<'_, W> {
    type Target = [W];
    fn deref(&self) -> &[W] {
        match &self.copy {
            Some(v) => v,
            None => self.array.as_slice().unwrap_or_default(),
        }
    }
}

/// Reads an array of element type `W` and its dims.
pub fn read<'py, W: Wire>(a: &Bound<'py, PyAny>, what: &str) -> PyResult<(Held<'py, W>, Vec<usize>)> {
    let typed = a.cast::<PyArrayDyn<W>>().map_err(|_| {
        let got = untyped(a).map(|u| u.dtype().to_string()).unwrap_or_else(|_| type_name(a));
        PyTypeError::new_err(format!("{what}: expected dtype {}, got {got}", dtype::<W>(a.py())))
    })?;
    let array = typed.try_readonly().map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    let dims = array.shape().to_vec();
    // `as_slice` also accepts Fortran order, whose memory order is not the logical one.
    let copy = if array.is_c_contiguous() && array.as_slice().is_ok() {
        None
    } else {
        let mut copy = Vec::new();
        copy.try_reserve_exact(array.len()).map_err(|_| {
            PyMemoryError::new_err(format!("{what}: out of memory copying {} elements into C order", array.len()))
        })?;
        copy.extend(array.as_array().iter().copied());
        Some(copy)
    };
    Ok((Held { array, copy }, dims))
}

/// A result tensor as a NumPy array of element type `W`, without a copy.
pub fn array_out<'py, W: Wire, T: bytemuck::Pod>(
    py: Python<'py>,
    t: Tensor<T>,
    layout: Layout,
) -> PyResult<Bound<'py, PyAny>> {
    let dims = t.shape().dims(layout);
    let data: Vec<W> = bytemuck::allocation::try_cast_vec(t.into_data())
        .map_err(|(e, _)| PyTypeError::new_err(format!("cannot hand the result back: {e:?}")))?;
    Ok(PyArray::from_vec(py, data).reshape(dims.as_slice())?.into_any())
}

/// Max pooling of an integer array (uint8, int8, int32, int64): `None` for other dtypes.
pub fn integer_max<'py>(
    py: Python<'py>,
    pool: &MaxPool,
    x: &Bound<'py, PyAny>,
    layout: Layout,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    fn run<'py, T: Wire + MaxElement>(
        py: Python<'py>,
        pool: &MaxPool,
        x: &Bound<'py, PyAny>,
        layout: Layout,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let (xa, dims) = read::<T>(x, "x")?;
        let data: &[T] = &xa;
        let out = compute(py, || pool.forward_with_indices(&view(data, &dims, layout)?)).map_err(py_err)?;
        Ok(Some((array_out::<T, T>(py, out.output, layout)?, array_out::<i64, i64>(py, out.indices, layout)?)))
    }
    let Ok(arr) = x.cast::<PyUntypedArray>() else { return Ok(None) };
    if is::<u8>(arr) {
        run::<u8>(py, pool, x, layout)
    } else if is::<i8>(arr) {
        run::<i8>(py, pool, x, layout)
    } else if is::<i32>(arr) {
        run::<i32>(py, pool, x, layout)
    } else if is::<i64>(arr) {
        run::<i64>(py, pool, x, layout)
    } else {
        Ok(None)
    }
}
