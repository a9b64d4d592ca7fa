//! Host memory: every array the crate allocates from sizes a user chose is sized with
//! checked arithmetic and allocated fallibly (`try_reserve_exact`), so a size that
//! overflows, or an allocation the system refuses, comes back as an [`Error`] naming the
//! argument that asked for it, in debug and release builds alike, never a panic or an
//! abort.
//!
//! The cap is the system's: Rust's `isize::MAX` bytes per allocation, then whatever the
//! allocator grants. On Linux with the default overcommit policy a single request larger
//! than RAM + swap is refused; a smaller one that is granted but cannot be backed when it
//! is touched is the kernel's business (the OOM killer), as for any program.

use ndarray::{Array, ArrayBase, Data, Dimension, ShapeBuilder};

use crate::error::{Error, Result};

/// The number of elements of `dims`, or [`Error::TooLarge`] naming `arg` when the product
/// of its non-zero dimensions overflows, or its bytes (at `elem` bytes each) pass
/// `isize::MAX` (ndarray's rule: a shape with a zero axis must still be representable).
pub(crate) fn elems(arg: &'static str, dims: &[usize], elem: usize) -> Result<usize> {
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| {
            n.checked_mul(elem.max(1))
                .is_some_and(|b| b <= isize::MAX as usize)
        });
    match nonzero {
        Some(_) if dims.contains(&0) => Ok(0),
        Some(n) => Ok(n),
        None => Err(Error::TooLarge {
            arg,
            bytes: bytes_u128(dims, elem),
            limit_name: "the host's address space (isize::MAX bytes)",
            limit: isize::MAX as u128,
        }),
    }
}

/// `Π dims · elem` in u128 over the non-zero dimensions, saturating (for messages).
pub(crate) fn bytes_u128(dims: &[usize], elem: usize) -> u128 {
    dims.iter()
        .filter(|&&d| d != 0)
        .try_fold(elem as u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX)
}

/// A vector of `n` copies of `v`, allocated fallibly.
pub(crate) fn vec_of<A: Clone>(arg: &'static str, n: usize, v: A) -> Result<Vec<A>> {
    let mut out = Vec::new();
    let size = std::mem::size_of::<A>().max(1);
    out.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        arg,
        bytes: n as u128 * size as u128,
    })?;
    out.resize(n, v);
    Ok(out)
}

/// An array of `shape` filled with `v`, sized and allocated fallibly.
pub(crate) fn full<A: Clone, D: Dimension, Sh: ShapeBuilder<Dim = D>>(
    arg: &'static str,
    shape: Sh,
    v: A,
) -> Result<Array<A, D>> {
    let shape = shape.into_shape_with_order();
    let dims = shape.raw_dim().clone();
    let n = elems(arg, dims.slice(), std::mem::size_of::<A>())?;
    let data = vec_of(arg, n, v)?;
    Array::from_shape_vec(shape, data).map_err(|e| Error::Invalid {
        arg,
        msg: format!("shape: {e}"),
    })
}

/// An all-zero array of `shape`, sized and allocated fallibly.
pub(crate) fn zeros<A: ndarray::LinalgScalar, D: Dimension, Sh: ShapeBuilder<Dim = D>>(
    arg: &'static str,
    shape: Sh,
) -> Result<Array<A, D>> {
    full(arg, shape, A::zero())
}

/// A standard-layout (row-major) owned copy of any array or view (transposed, stepped,
/// reversed or broadcast), allocated fallibly.
pub(crate) fn copy<A: Clone, S: Data<Elem = A>, D: Dimension>(
    arg: &'static str,
    a: &ArrayBase<S, D>,
) -> Result<Array<A, D>> {
    let n = elems(arg, a.shape(), std::mem::size_of::<A>())?;
    let mut data = Vec::new();
    data.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        arg,
        bytes: bytes_u128(a.shape(), std::mem::size_of::<A>()),
    })?;
    data.extend(a.iter().cloned());
    Array::from_shape_vec(a.raw_dim(), data).map_err(|e| Error::Invalid {
        arg,
        msg: format!("shape: {e}"),
    })
}
