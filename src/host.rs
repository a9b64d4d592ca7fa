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

/// `n` zeros of `f32` or `f64`, allocated fallibly with the allocator's zeroed memory
/// (`calloc`: fresh pages cost nothing until touched); `None` for any other type.
/// Asks the kernel for transparent huge pages behind a large allocation before it is
/// first touched (Linux; a no-op elsewhere, or when the kernel says no): the CPU path
/// allocates its traces and gradients per call, and faulting in tens of megabytes
/// 4 KiB at a time cost it a tenth of its time. Only the 2 MiB-aligned interior is
/// advised; allocations under 4 MiB are left alone.
pub(crate) fn advise_huge<A>(ptr: *const A, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = len * std::mem::size_of::<A>();
        if bytes < 2 * HUGE {
            return;
        }
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + bytes) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the caller's live allocation; the advice
            // changes how its pages are backed, never their contents or validity.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

fn zeroed_float<A: 'static>(arg: &'static str, n: usize) -> Option<Result<Vec<A>>> {
    use std::any::TypeId;
    let t = TypeId::of::<A>();
    if t != TypeId::of::<f32>() && t != TypeId::of::<f64>() {
        return None;
    }
    let refused = || Error::OutOfMemory {
        arg,
        bytes: n as u128 * std::mem::size_of::<A>() as u128,
    };
    let Ok(layout) = std::alloc::Layout::array::<A>(n) else {
        return Some(Err(refused()));
    };
    if layout.size() == 0 {
        return Some(Ok(Vec::new()));
    }
    // SAFETY: the layout has a non-zero size; all-zero bits are 0.0 for f32 and f64
    // (checked above); the pointer, capacity and length are the allocation's, made by
    // the global allocator with `A`'s layout, as `Vec::from_raw_parts` requires.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut A;
        if ptr.is_null() {
            return Some(Err(refused()));
        }
        advise_huge(ptr, n);
        Some(Ok(Vec::from_raw_parts(ptr, n, n)))
    }
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

/// An all-zero array of `shape`, sized and allocated fallibly.
pub(crate) fn zeros<A: ndarray::LinalgScalar, D: Dimension, Sh: ShapeBuilder<Dim = D>>(
    arg: &'static str,
    shape: Sh,
) -> Result<Array<A, D>> {
    let shape = shape.into_shape_with_order();
    let n = elems(arg, shape.raw_dim().slice(), std::mem::size_of::<A>())?;
    let data = match zeroed_float::<A>(arg, n) {
        Some(v) => v?,
        None => vec_of(arg, n, A::zero())?,
    };
    Array::from_shape_vec(shape, data).map_err(|e| Error::Invalid {
        arg,
        msg: format!("shape: {e}"),
    })
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
    advise_huge(data.as_ptr(), n);
    match a.as_slice() {
        Some(s) => data.extend_from_slice(s),
        None => data.extend(a.iter().cloned()),
    }
    Array::from_shape_vec(a.raw_dim(), data).map_err(|e| Error::Invalid {
        arg,
        msg: format!("shape: {e}"),
    })
}

/// `[rows, row.len()]` with every row a copy of `row` (a bias broadcast over the rows),
/// written in one pass, sized and allocated fallibly.
pub(crate) fn tiled<A: Copy>(
    arg: &'static str,
    rows: usize,
    row: &ndarray::Array1<A>,
) -> Result<ndarray::Array2<A>> {
    let n = elems(arg, &[rows, row.len()], std::mem::size_of::<A>())?;
    let mut data = Vec::new();
    data.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
        arg,
        bytes: bytes_u128(&[rows, row.len()], std::mem::size_of::<A>()),
    })?;
    advise_huge(data.as_ptr(), n);
    let row = row.to_vec();
    for _ in 0..rows {
        data.extend_from_slice(&row);
    }
    ndarray::Array2::from_shape_vec((rows, row.len()), data).map_err(|e| Error::Invalid {
        arg,
        msg: format!("shape: {e}"),
    })
}
