//! Allocations whose size a request decides (generated inputs, conversions, encoded
//! files): fallible, so a request too big for memory is a clear error, never an abort.

use anyhow::{anyhow, Result};

/// The items of an iterator of known length, collected into memory reserved first.
pub fn collect<T>(items: impl ExactSizeIterator<Item = T>, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    reserve(&mut v, items.len(), what)?;
    v.extend(items);
    Ok(v)
}

/// Reserves room for `additional` more elements of `v`.
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    v.try_reserve_exact(additional).map_err(|_| {
        let bytes = additional.saturating_mul(std::mem::size_of::<T>());
        anyhow!("out of memory: could not allocate {bytes} bytes for {what}")
    })
}
