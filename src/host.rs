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

/// A cache of the large buffers the CPU path's outputs (traces, gradients, inference
/// outputs) and its own temporaries give back when dropped, from which [`zeros`] takes
/// before asking the allocator. A training loop allocates and drops the same few
/// megabytes every step; the allocator hands most of them back to the system (glibc
/// trims and unmaps them), and faulting them in again 4 KiB at a time cost the CPU path
/// a quarter of its time at T50 B16 H256. Kept: buffers of at least [`cache::MIN_BYTES`],
/// at most [`cache::MAX_COUNT`] of them and [`cache::MAX_BYTES`] in all (the oldest go
/// first); shared by every thread.
pub(crate) mod cache {
    use std::alloc::Layout;
    use std::sync::Mutex;

    /// Buffers smaller than this are the allocator's business (256 KiB).
    pub(crate) const MIN_BYTES: usize = 256 << 10;
    /// The most bytes the cache holds (128 MiB).
    pub(crate) const MAX_BYTES: usize = 128 << 20;
    /// The most buffers it holds.
    pub(crate) const MAX_COUNT: usize = 32;

    /// A kept allocation: made by the global allocator with `Layout(bytes, align)`.
    struct Raw {
        ptr: *mut u8,
        bytes: usize,
        align: usize,
    }

    // SAFETY: a `Raw` owns its allocation alone (taken from a `Vec` that gave it up); it
    // holds no values, only memory.
    unsafe impl Send for Raw {}

    impl Raw {
        fn free(self) {
            // SAFETY: the allocation was made with this layout (a `Vec`'s, see `give`).
            unsafe {
                std::alloc::dealloc(
                    self.ptr,
                    Layout::from_size_align_unchecked(self.bytes, self.align),
                )
            }
        }
    }

    static FREE: Mutex<Vec<Raw>> = Mutex::new(Vec::new());

    /// Keeps `v`'s allocation for a later [`take`] (its elements are dropped first);
    /// small ones, and any past the limits, go back to the allocator.
    pub(crate) fn give<A>(mut v: Vec<A>) {
        v.clear();
        let bytes = v.capacity() * std::mem::size_of::<A>();
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
            return;
        }
        let mut v = std::mem::ManuallyDrop::new(v);
        // A `Vec`'s allocation has the layout of `[A; capacity]`: `bytes` bytes aligned
        // to `A`.
        let raw = Raw {
            ptr: v.as_mut_ptr() as *mut u8,
            bytes,
            align: std::mem::align_of::<A>(),
        };
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        free.push(raw);
        let mut total: usize = free.iter().map(|r| r.bytes).sum();
        while free.len() > MAX_COUNT || total > MAX_BYTES {
            let old = free.remove(0);
            total -= old.bytes;
            old.free();
        }
    }

    /// An empty vector with room for `n` elements from a kept allocation of the right
    /// alignment, at least `n` elements and at most a quarter more bytes (the smallest
    /// such: an array that lives long holds little slack);
    /// `None` when there is none, or `n` elements are too few to be kept.
    pub(crate) fn take<A>(n: usize) -> Option<Vec<A>> {
        let size = std::mem::size_of::<A>();
        let bytes = n.checked_mul(size)?;
        if bytes < MIN_BYTES {
            return None;
        }
        let align = std::mem::align_of::<A>();
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let i = free
            .iter()
            .enumerate()
            .filter(|(_, r)| r.align == align && r.bytes % size == 0)
            .filter(|(_, r)| r.bytes >= bytes && r.bytes - bytes <= bytes / 4)
            .min_by_key(|(_, r)| r.bytes)
            .map(|(i, _)| i)?;
        let raw = free.remove(i);
        // SAFETY: the allocation was made by the global allocator for `r.bytes` bytes
        // aligned to `align`, which is `A`'s, and `bytes` is a whole number of `A`s: the
        // layout of `[A; capacity]`, as `Vec::from_raw_parts` requires; no element is
        // claimed initialized (length 0); no one else owns it (removed from the cache).
        Some(unsafe { Vec::from_raw_parts(raw.ptr as *mut A, 0, raw.bytes / size) })
    }

    /// Frees every buffer the cache holds.
    pub(crate) fn clear() {
        let held = std::mem::take(&mut *FREE.lock().unwrap_or_else(|e| e.into_inner()));
        held.into_iter().for_each(Raw::free);
    }

    /// The buffers held and their bytes.
    #[cfg(test)]
    pub(crate) fn held() -> (usize, usize) {
        let free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        (free.len(), free.iter().map(|r| r.bytes).sum())
    }

    /// Gives an array's buffer to the cache, leaving an empty array in its place.
    pub(crate) fn give_array<A, D: ndarray::Dimension>(a: &mut ndarray::Array<A, D>) {
        let mut dim = a.raw_dim();
        dim.slice_mut().fill(0);
        // An empty array of the same rank (zero elements: any shape with a zero axis).
        let Ok(empty) = ndarray::Array::from_shape_vec(dim, Vec::new()) else {
            return;
        };
        let (v, _) = std::mem::replace(a, empty).into_raw_vec_and_offset();
        give(v);
    }

    /// [`give_array`] for an optional array.
    pub(crate) fn give_opt<A, D: ndarray::Dimension>(a: &mut Option<ndarray::Array<A, D>>) {
        if let Some(a) = a {
            give_array(a);
        }
    }
}

/// An all-zero array of `shape`, sized and allocated fallibly.
pub(crate) fn zeros<A: ndarray::LinalgScalar, D: Dimension, Sh: ShapeBuilder<Dim = D>>(
    arg: &'static str,
    shape: Sh,
) -> Result<Array<A, D>> {
    let shape = shape.into_shape_with_order();
    let n = elems(arg, shape.raw_dim().slice(), std::mem::size_of::<A>())?;
    let data = match cache::take::<A>(n) {
        Some(mut v) => {
            v.resize(n, A::zero());
            v
        }
        None => match zeroed_float::<A>(arg, n) {
            Some(v) => v?,
            None => vec_of(arg, n, A::zero())?,
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer given back (full of NaN) comes out of `zeros` as zeros, for the same
    /// element type and a size it fits; one of another alignment, too small, or more
    /// than twice too large is not handed out. (One test: the cache is shared by the
    /// process, and the checks look at what it holds.)
    #[test]
    fn cache_reuses_given_buffers_zeroed() {
        // A size no other test of the library asks for (the cache is the process's).
        let n = cache::MIN_BYTES / 4 * 37;
        let v = vec![f32::NAN; n];
        let ptr = v.as_ptr();
        cache::give(v);
        let z = zeros::<f32, _, _>("x", (3, n / 3)).unwrap();
        assert_eq!(z.as_ptr(), ptr, "the given buffer is reused");
        assert!(z.iter().all(|&x| x == 0.0));
        let mut z = z;
        cache::give_array(&mut z);
        assert_eq!(z.len(), 0);
        // f64 has another alignment; fewer bytes than the cache keeps; a buffer a third
        // larger than the request: none of them takes the f32 buffer back.
        assert!(cache::take::<f64>(n / 2).map(|v| v.as_ptr() as *const f32) != Some(ptr));
        assert!(cache::take::<f32>(16).is_none());
        assert!(cache::take::<f32>(n / 4 * 3).map(|v| v.as_ptr()) != Some(ptr));
        let back = cache::take::<f32>(n).expect("kept");
        assert_eq!(back.as_ptr(), ptr);
        assert!(back.is_empty() && back.capacity() >= n);
        // Past the cache's bytes, the oldest go back to the allocator.
        for _ in 0..cache::MAX_COUNT + 4 {
            cache::give(vec![0f32; n]);
        }
        let (count, bytes) = cache::held();
        assert!(count <= cache::MAX_COUNT && bytes <= cache::MAX_BYTES);
        cache::give(back);
        let (count2, _) = cache::held();
        assert!(count2 <= cache::MAX_COUNT && cache::take::<f32>(n).is_some());
        cache::clear();
        assert!(cache::take::<f32>(n).is_none());
    }
}
