//! The CPU path's `f32` matrix product: `C (+)= A·B` with `B` packed once into panels of
//! [`NR`] columns (a weight packed at the start of a sequence serves every step), `A`
//! packed per tile of [`MR`] rows, and a register-blocked `MR × NR` microkernel compiled
//! three times — AVX-512, AVX2 + FMA, and portable — and chosen at run time.
//!
//! The microkernel is plain Rust over fixed-size arrays; under each `target_feature` the
//! compiler keeps the `MR × NR` accumulators in vector registers and fuses the
//! multiply-adds (`mul_add` only where FMA is enabled; the portable build multiplies and
//! adds). Results differ from `ndarray`'s product only by summation order.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Columns per panel of a packed `B` (two 512-bit or four 256-bit vectors).
pub(crate) const NR: usize = 32;
/// Rows per microkernel tile.
pub(crate) const MR: usize = 8;

/// `B [K, N]` packed into `⌈N / NR⌉` panels, each `K` rows of [`NR`] columns (zero past
/// `N`).
#[derive(Debug, Clone)]
pub struct Packed {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Packed {
    /// Packs `B = m` for `m [K, N]`, of any strides (read in memory order when its rows
    /// or its columns are contiguous: a weight `w [N, K]` is packed as `w.t()`).
    pub(crate) fn plain(m: ArrayView2<f32>) -> Packed {
        Packed::stacked(&[m])
    }

    /// Packs `B` made of `parts` stacked along `K` (`[K₁, N]` over `[K₂, N]` …: the
    /// input and recurrent weights `[W_ih W_hh]ᵀ` of a step that multiplies `[x_t h]`),
    /// each of any strides, without building `B`.
    ///
    /// # Panics
    /// If the parts' `N` differ (a bug of the caller).
    pub(crate) fn stacked(parts: &[ArrayView2<f32>]) -> Packed {
        let n = parts.first().map_or(0, |m| m.ncols());
        assert!(parts.iter().all(|m| m.ncols() == n), "stacked widths");
        let k = parts.iter().map(|m| m.nrows()).sum();
        let panels = n.div_ceil(NR);
        let mut data = pool::take(panels * k * NR);
        if data.is_empty() {
            return Packed { k, n, data };
        }
        // A large B is packed by the workers, a share of the panels each (not from
        // inside a part of work already split).
        let serial = SERIAL.with(|s| s.get()) || data.len() < PACK_SPLIT;
        let per = panels.div_ceil(if serial { 1 } else { threads() });
        let shares: Vec<_> = data
            .chunks_mut(per * k * NR)
            .enumerate()
            .map(|(g, d)| std::sync::Mutex::new(Some((g * per, d))))
            .collect();
        super::workers::run(shares.len(), &|g| {
            let share = shares[g].lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((p0, d)) = share {
                fill_panels(parts, k, n, p0, d);
            }
        });
        drop(shares);
        Packed { k, n, data }
    }
}

/// Floats of a packed `B` from which its packing is shared out to the workers.
const PACK_SPLIT: usize = 1 << 18;

/// Packs panels `p0 ..` of the `B` made of `parts` stacked along `K` (`k` rows in all,
/// `n` columns) into `data`, whole panels of `k · NR` floats.
fn fill_panels(parts: &[ArrayView2<f32>], k: usize, n: usize, p0: usize, data: &mut [f32]) {
    let np = data.len() / (k * NR);
    let mut k0 = 0;
    for m in parts {
        let kp = m.nrows();
        let (rs, cs) = (m.strides()[0], m.strides()[1]);
        let mp = m.as_ptr();
        // SAFETY (every read below): kk < kp and col < n address m's own elements
        // through its strides.
        let get =
            |kk: usize, col: usize| unsafe { *mp.offset(kk as isize * rs + col as isize * cs) };
        if rs == 1 && cs != 1 {
            // Columns contiguous: each column of m fills one slot of every row of a
            // panel.
            for col in p0 * NR..((p0 + np) * NR).min(n) {
                let (p, c) = (col / NR - p0, col % NR);
                let panel = &mut data[p * k * NR..(p + 1) * k * NR];
                for kk in 0..kp {
                    panel[(k0 + kk) * NR + c] = get(kk, col);
                }
            }
        } else {
            for p in 0..np {
                let cols = NR.min(n - (p0 + p) * NR);
                let panel = &mut data[p * k * NR..(p + 1) * k * NR];
                let rows = panel[k0 * NR..(k0 + kp) * NR].chunks_exact_mut(NR);
                for (kk, out) in rows.enumerate() {
                    if cs != 1 {
                        for (c, o) in out[..cols].iter_mut().enumerate() {
                            *o = get(kk, (p0 + p) * NR + c);
                        }
                        continue;
                    }
                    // Rows contiguous: each panel row is a run of one row of m.
                    // SAFETY: columns (p0 + p)·NR .. + cols of row kk are m's own
                    // elements, contiguous (cs = 1).
                    let src = unsafe { mp.offset(kk as isize * rs + ((p0 + p) * NR) as isize) };
                    if cols == NR {
                        // SAFETY: as above, NR of them (read unaligned as one array).
                        out.copy_from_slice(&unsafe { (src as *const [f32; NR]).read_unaligned() });
                    } else {
                        // SAFETY: as above.
                        out[..cols]
                            .copy_from_slice(unsafe { std::slice::from_raw_parts(src, cols) });
                    }
                }
            }
        }
        k0 += kp;
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.data));
    }
}

/// A per-thread cache of the packed operands' buffers: a sequence packs its weights and
/// the weight gradients' operands on every call, and handing megabytes back to the
/// allocator and faulting them in again cost more than the packing.
mod pool {
    use std::cell::RefCell;

    /// Buffers kept per thread at most, and their floats in all (32 MiB).
    const KEEP: usize = 8;
    const KEEP_FLOATS: usize = 8 << 20;

    thread_local! {
        static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    }

    /// A zeroed buffer of `n` floats, reusing a kept one when one is large enough.
    pub(super) fn take(n: usize) -> Vec<f32> {
        let reused = FREE.with(|f| {
            let mut f = f.borrow_mut();
            let best = f
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= n)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            best.map(|i| f.swap_remove(i))
        });
        match reused {
            Some(mut v) => {
                v.clear();
                v.resize(n, 0.0);
                v
            }
            None => vec![0.0; n],
        }
    }

    /// Keeps `v` for a later [`take`] on this thread (the largest few).
    pub(super) fn give(v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            f.push(v);
            while f.len() > KEEP || f.iter().map(Vec::capacity).sum::<usize>() > KEEP_FLOATS {
                let smallest = f
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, v)| v.capacity())
                    .map(|(i, _)| i);
                if let Some(i) = smallest {
                    f.swap_remove(i);
                }
            }
        });
    }
}

/// Which microkernel the CPU path runs (detected once; `WGPU_RNN_CPU_ISA` may lower it,
/// see [`isa`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2,
    Portable,
}

/// The best of [`Isa`] the processor has, or a lesser one that `WGPU_RNN_CPU_ISA`
/// (`avx2` or `portable`) asks for, to time or test the other kernels on a processor
/// that has more; an ISA it lacks, or another value, is ignored (read once).
pub(crate) fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let best = detect();
        let asked = match std::env::var("WGPU_RNN_CPU_ISA").as_deref() {
            Ok("avx2") => Isa::Avx2,
            Ok("portable") => Isa::Portable,
            _ => best,
        };
        // Ordered Avx512 > Avx2 > Portable: never above what was detected.
        match (best, asked) {
            (Isa::Portable, _) | (Isa::Avx2, Isa::Avx512) => best,
            _ => asked,
        }
    })
}

/// The microkernel's name (`avx512`, `avx2` or `portable`), for benchmark headers.
pub fn isa_name() -> &'static str {
    match isa() {
        Isa::Avx512 => "avx512",
        Isa::Avx2 => "avx2",
        Isa::Portable => "portable",
    }
}

/// The best microkernel this processor runs.
fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        // AVX-512 needs VL too (the cells' elementwise rows are compiled with it,
        // see `simd_rows`), and AVX2 + FMA (which every such processor has).
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// Products smaller than this many multiply-adds run on the calling thread alone.
const THREAD_MIN: usize = 1 << 24;

thread_local! {
    /// Set while this thread runs one part of work already split across threads: its
    /// products stay on it (no threads spawned inside threads).
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every product on this thread (for a part of work that the caller has
/// already split across the processor's threads).
pub(crate) fn serial<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag however `f` ends.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
}

/// `C (+)= A·B` for `A [M, K]` and `C [M, N]` of any strides (`acc` adds to `C`,
/// otherwise overwrites it); rows of `C` split across threads when the product is large.
///
/// # Panics
/// If the shapes disagree (a bug of the caller: the engines size them).
pub(crate) fn gemm(a: ArrayView2<f32>, b: &Packed, c: ArrayViewMut2<f32>, acc: bool) {
    gemm_bias(a, b, None, c, acc)
}

/// [`gemm`] adding `bias [N]` to every row of the product as it is written (the input
/// projection's bias, without a pass of its own over C).
///
/// # Panics
/// If the shapes disagree (a bug of the caller: the engines size them).
pub(crate) fn gemm_bias(
    a: ArrayView2<f32>,
    b: &Packed,
    bias: Option<&[f32]>,
    c: ArrayViewMut2<f32>,
    acc: bool,
) {
    let (m, k) = a.dim();
    assert!(k == b.k && c.dim() == (m, b.n), "gemm shapes");
    assert!(bias.is_none_or(|v| v.len() == b.n), "gemm bias");
    let threads = threads();
    let tiles = m.div_ceil(MR);
    let parts = threads.min(tiles).min((m * k * b.n / THREAD_MIN).max(1));
    if parts <= 1 || SERIAL.with(|s| s.get()) {
        return gemm_rows(a, b, bias, c, acc);
    }
    let per = tiles.div_ceil(parts) * MR;
    // The rows cut into one share per part, each run by a worker (or this thread).
    let mut shares = Vec::with_capacity(parts);
    let (mut a, mut c) = (a, c);
    while a.nrows() > per {
        let (a0, a1) = a.split_at(Axis(0), per);
        let (c0, c1) = c.split_at(Axis(0), per);
        shares.push(std::sync::Mutex::new(Some((a0, c0))));
        (a, c) = (a1, c1);
    }
    shares.push(std::sync::Mutex::new(Some((a, c))));
    super::workers::run(shares.len(), &|k| {
        let share = shares[k].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((a, c)) = share {
            gemm_rows(a, b, bias, c, acc);
        }
    });
}

/// The processor's threads for this process (read once: the call reads cgroup files).
pub(crate) fn threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Rows of `A` per block: each panel's slice of `B` meets all their tiles in turn.
const MC: usize = 64;
/// Depth of `K` per pass of [`gemm_cols`].
const KC: usize = 1024;

/// [`gemm`] on the calling thread for an `A` whose columns are contiguous (a transposed
/// operand: the weight gradients' `dGᵀ`, whose `K` runs over all `T·B` rows). Packing
/// such an `A` one tile at a time reads `MR` floats from every one of its `K` columns,
/// each in another page; here blocks of [`MC`] rows by [`KC`] of `K` are packed
/// together (runs of `MC` floats), then each panel's slice of `B` meets every tile of
/// the block. Every element of `C` sums its products in the same order whatever `M`,
/// the block or the thread (the passes over `K` depend on `K` alone).
fn gemm_cols(
    a: ArrayView2<f32>,
    b: &Packed,
    bias: Option<&[f32]>,
    mut c: ArrayViewMut2<f32>,
    acc: bool,
) {
    let (m, k) = a.dim();
    if m == 0 || b.n == 0 {
        return;
    }
    let mut apack = pool::take(MC.min(m.next_multiple_of(MR)) * KC.min(k));
    let acs = a.strides()[1];
    let ap = a.as_ptr();
    // The block's tiles, each k-major: tile t holds A[m0 + t·MR + r, k0 + kk] at
    // t·kc·MR + kk·MR + r (zero rows past m), packed together (runs of the block's rows).
    let pack = |m0: usize, k0: usize, kc: usize, apack: &mut [f32]| {
        let mrows = MC.min(m - m0);
        if !mrows.is_multiple_of(MR) {
            apack.fill(0.0);
        }
        for kk in 0..kc {
            // SAFETY: rows m0 .. m0 + mrows of column k0 + kk are elements of A,
            // contiguous (its columns are).
            let col = unsafe {
                std::slice::from_raw_parts(ap.offset((k0 + kk) as isize * acs + m0 as isize), mrows)
            };
            // Whole runs of MR as fixed-size moves (a copy of a run's length would be a
            // library call per 32 bytes), then the last tile's part run.
            let runs = col.chunks_exact(MR);
            let rest = runs.remainder();
            let mut o = kk * MR;
            for run in runs {
                let run: [f32; MR] = run.try_into().expect("MR floats");
                let out: &mut [f32; MR] = (&mut apack[o..o + MR]).try_into().expect("MR");
                *out = run;
                o += kc * MR;
            }
            if !rest.is_empty() {
                apack[o..o + rest.len()].copy_from_slice(rest);
            }
        }
    };
    // SAFETY: C's view is borrowed mutably here; no tile is read where A lies.
    unsafe { walk_blocks((m, k), b, bias, &mut c, acc, &mut apack, pack, |_, _| None) };
    pool::give(apack);
}

/// The walk [`gemm_rows`] and [`gemm_cols`] share: blocks of [`MC`] rows (each panel's
/// slice of `B` meets every tile of the block in turn: fetched into cache once per
/// block, not once per tile) and passes of [`KC`] over `K` (the first writing `C`,
/// adding when asked, with the bias; later ones adding), so that every element of `C`
/// sums its products in the same order whatever `M`, the path or the thread. Each pass
/// first calls `pack(m0, k0, kc, apack)`, which fills the block's tiles that `direct`
/// does not give (tile `t` at `t·kc·MR`, k-major); `direct(i0, k0)` may give a tile's
/// rows of `A` where they are instead.
///
/// # Safety
/// A tile `direct` gives addresses `MR` rows of at least `kc` floats of `A` from column
/// `k0` (an [`ATile::Rows`] read only by the AVX-512 and AVX2 kernels).
#[allow(clippy::too_many_arguments)]
unsafe fn walk_blocks(
    (m, k): (usize, usize),
    b: &Packed,
    bias: Option<&[f32]>,
    c: &mut ArrayViewMut2<f32>,
    acc: bool,
    apack: &mut [f32],
    mut pack: impl FnMut(usize, usize, usize, &mut [f32]),
    direct: impl Fn(usize, usize) -> Option<ATile<'static>>,
) {
    let n = b.n;
    let (rs, cs) = (c.strides()[0], c.strides()[1]);
    let cp = c.as_mut_ptr();
    for m0 in (0..m).step_by(MC) {
        let tiles = MC.min(m - m0).div_ceil(MR);
        // K = 0 still writes C (the bias, or zeros): one empty pass.
        let mut k0 = 0;
        loop {
            let kc = KC.min(k - k0);
            pack(m0, k0, kc, apack);
            let (add, bias) = match k0 {
                0 => (acc, bias),
                _ => (true, None),
            };
            for p in 0..n.div_ceil(NR) {
                let cols = NR.min(n - p * NR);
                let panel = &b.data[p * k * NR + k0 * NR..p * k * NR + (k0 + kc) * NR];
                let bias = bias.map(|v| &v[p * NR..p * NR + cols]);
                for t in 0..tiles {
                    let i0 = m0 + t * MR;
                    let rows = MR.min(m - i0);
                    let at = direct(i0, k0)
                        .unwrap_or(ATile::Packed(&apack[t * kc * MR..(t + 1) * kc * MR]));
                    // SAFETY: rows i0 .. i0 + rows and columns p·NR .. p·NR + cols lie in
                    // C (i0 + rows ≤ m, p·NR + cols ≤ n), addressed through its strides;
                    // A's tile as `at` says (the caller's promise for a direct one).
                    unsafe {
                        let c0 = cp.offset(i0 as isize * rs + (p * NR) as isize * cs);
                        tile_product(kc, at, panel, c0, (rs, cs), (rows, cols), add, bias);
                    }
                }
            }
            k0 += kc;
            if k0 >= k {
                break;
            }
        }
    }
}

/// `C[rows, cols] (+)= tile · panel (+ bias)` for one packed tile of `A` and one slice
/// of a panel of `B` (`kc` deep), `C` at `c0` with strides `(rs, cs)`.
///
/// # Safety
/// `c0` addresses `rows ≤ MR` rows of `cols ≤ NR` elements of a live `C` through the
/// strides, which no one else touches meanwhile; `bias` holds `cols` floats; `at` is
/// packed (`kc · MR` floats), or, on AVX-512 and AVX2 only, `MR` rows of `kc` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_product(
    kc: usize,
    at: ATile<'_>,
    panel: &[f32],
    c0: *mut f32,
    (rs, cs): (isize, isize),
    (rows, cols): (usize, usize),
    add: bool,
    bias: Option<&[f32]>,
) {
    // A full tile of a C with contiguous rows: the AVX-512 and AVX2 kernels write C
    // directly.
    #[cfg(target_arch = "x86_64")]
    if rows == MR && cols == NR && cs == 1 && isa() != Isa::Portable {
        let bp = bias.map_or(std::ptr::null(), |v| v.as_ptr());
        let out = Out::C(c0, rs, add, bp);
        // SAFETY: the processor has the kernel's extensions (detected); the caller's
        // promise: MR rows of NR contiguous floats (cs = 1), rs apart; NR bias floats
        // or null.
        match isa() {
            Isa::Avx512 => unsafe { kernel_avx512(kc, at, panel, out) },
            Isa::Avx2 => unsafe { kernel_avx2(kc, at, panel, out) },
            Isa::Portable => unreachable!("the portable kernel writes a tile"),
        }
        return;
    }
    let mut tile = [[0f32; NR]; MR];
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the processor has AVX-512F (detected).
        Isa::Avx512 => unsafe { kernel_avx512(kc, at, panel, Out::Tile(&mut tile)) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the processor has AVX2 and FMA (detected).
        Isa::Avx2 => unsafe { kernel_avx2(kc, at, panel, Out::Tile(&mut tile)) },
        _ => kernel_portable(kc, at.packed(), panel, &mut tile),
    }
    if let Some(v) = bias {
        for t in tile.iter_mut().take(rows) {
            for (x, bv) in t.iter_mut().zip(v) {
                *x += bv;
            }
        }
    }
    for (r, t) in tile.iter().enumerate().take(rows) {
        if cs == 1 {
            // SAFETY: the caller's promise: row r's cols contiguous floats (cs = 1).
            let o = unsafe { std::slice::from_raw_parts_mut(c0.offset(r as isize * rs), cols) };
            if add {
                o.iter_mut().zip(t).for_each(|(o, v)| *o += v);
            } else {
                o.copy_from_slice(&t[..cols]);
            }
            continue;
        }
        for (j, v) in t.iter().enumerate().take(cols) {
            // SAFETY: the caller's promise: row r < rows, column j < cols of C.
            unsafe {
                let o = c0.offset(r as isize * rs + j as isize * cs);
                *o = if add { *o + v } else { *v };
            }
        }
    }
}

/// [`gemm`] on the calling thread, in blocks of [`MC`] rows and passes of [`KC`] over
/// `K` (as [`gemm_cols`], so that every element of `C` sums its products in the same
/// order on either path, whatever `M`).
fn gemm_rows(
    a: ArrayView2<f32>,
    b: &Packed,
    bias: Option<&[f32]>,
    mut c: ArrayViewMut2<f32>,
    acc: bool,
) {
    let (m, k) = a.dim();
    if m == 0 || b.n == 0 {
        return;
    }
    if a.strides()[0] == 1 && a.strides()[1] != 1 && m > MR {
        return gemm_cols(a, b, bias, c, acc);
    }
    let tiles_max = MC.min(m.next_multiple_of(MR)) / MR;
    let mut apack = pool::take(tiles_max * KC.min(k) * MR);
    let (ars, acs) = (a.strides()[0], a.strides()[1]);
    let ap = a.as_ptr();
    // A full tile of an A with contiguous rows: the AVX-512 and AVX2 kernels read them
    // where they are. Otherwise the pass packs the tile k-major (zero rows past m).
    let whole = |i0: usize| MR.min(m - i0) == MR && acs == 1 && isa() != Isa::Portable;
    let pack = |m0: usize, k0: usize, kc: usize, apack: &mut [f32]| {
        for t in 0..MC.min(m - m0).div_ceil(MR) {
            let i0 = m0 + t * MR;
            if !whole(i0) {
                let tile = &mut apack[t * kc * MR..(t + 1) * kc * MR];
                pack_a(tile, ap, (ars, acs), (i0, MR.min(m - i0)), (k0, kc));
            }
        }
    };
    let direct = |i0: usize, k0: usize| {
        // SAFETY: a whole tile: rows i0 .. i0 + MR of A from column k0, each with its
        // columns k0 .. k contiguous (acs = 1).
        whole(i0).then(|| ATile::Rows(unsafe { ap.offset(i0 as isize * ars + k0 as isize) }, ars))
    };
    // SAFETY: C's view is borrowed mutably here; `direct` as promised above.
    unsafe { walk_blocks((m, k), b, bias, &mut c, acc, &mut apack, pack, direct) };
    pool::give(apack);
}

/// Packs rows `i0 .. i0 + rows` (at most [`MR`]) and columns `k0 .. k0 + kc` of `A` (at
/// `ap`, strides `(ars, acs)`) k-major into `tile` (`kc · MR` floats; rows past `rows`
/// zero), read in memory order: whole rows, or, for an `A` with contiguous columns (a
/// transposed operand: the weight gradients' `dGᵀ`), `rows` contiguous floats per `kk`.
fn pack_a(
    tile: &mut [f32],
    ap: *const f32,
    (ars, acs): (isize, isize),
    (i0, rows): (usize, usize),
    (k0, kc): (usize, usize),
) {
    if rows < MR {
        tile.fill(0.0);
    }
    let at = |r: usize, kk: usize| (i0 + r) as isize * ars + (k0 + kk) as isize * acs;
    if ars == 1 && rows == MR {
        for (kk, out) in tile.chunks_exact_mut(MR).enumerate().take(kc) {
            // SAFETY: rows i0 .. i0 + MR of column k0 + kk are elements of A, and
            // contiguous (ars = 1); read unaligned as one array of MR floats.
            let col = unsafe { (ap.offset(at(0, kk)) as *const [f32; MR]).read_unaligned() };
            out.copy_from_slice(&col);
        }
    } else if ars == 1 {
        for (kk, out) in tile.chunks_exact_mut(MR).enumerate().take(kc) {
            // SAFETY: rows i0 .. i0 + rows of column k0 + kk are elements of A, and
            // contiguous (ars = 1).
            let col = unsafe { std::slice::from_raw_parts(ap.offset(at(0, kk)), rows) };
            out[..rows].copy_from_slice(col);
        }
    } else if acs == 1 {
        for r in 0..rows {
            // SAFETY: columns k0 .. k0 + kc of row i0 + r are elements of A, and
            // contiguous (acs = 1).
            let row = unsafe { std::slice::from_raw_parts(ap.offset(at(r, 0)), kc) };
            for (o, v) in tile.iter_mut().skip(r).step_by(MR).zip(row) {
                *o = *v;
            }
        }
    } else {
        for r in 0..rows {
            for kk in 0..kc {
                // SAFETY: i0 + r < m and k0 + kk < k: an element of A through its
                // strides.
                tile[kk * MR + r] = unsafe { *ap.offset(at(r, kk)) };
            }
        }
    }
}

/// Where a kernel's tile goes: a local tile, or straight into C (`(first element, row
/// stride, add to C, bias of the NR columns or null)`, rows contiguous).
#[cfg(target_arch = "x86_64")]
enum Out<'a> {
    Tile(&'a mut [[f32; NR]; MR]),
    C(*mut f32, isize, bool, *const f32),
}

/// Where the AVX-512 and AVX2 kernels read their `MR` rows of `A`: packed k-major
/// (`a[kk·MR + r]`, [`pack_a`]), or straight from `A` when its rows are contiguous
/// (`A[r, kk]` at `ptr + r·stride + kk`: no packing at all).
#[derive(Clone, Copy)]
enum ATile<'a> {
    Packed(&'a [f32]),
    Rows(*const f32, isize),
}

impl<'a> ATile<'a> {
    /// The packed tile (the portable kernel reads only those).
    ///
    /// # Panics
    /// On `Rows`, which only the AVX-512 and AVX2 kernels are given.
    fn packed(self) -> &'a [f32] {
        match self {
            ATile::Packed(p) => p,
            ATile::Rows(..) => unreachable!("A's rows go to the AVX-512 and AVX2 kernels only"),
        }
    }
}

/// AVX-512: the `MR × NR` tile in 16 zmm accumulators; per `kk` two panel loads and
/// `MR` broadcasts.
///
/// # Safety
/// The processor has AVX-512F; with `ATile::Rows`, the pointer addresses `MR` rows of
/// `k` contiguous floats, `stride` apart; with `Out::C`, the pointer addresses `MR` rows
/// of `NR` contiguous floats, `row stride` apart, and the bias pointer is null or
/// addresses `NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512(k: usize, a: ATile<'_>, panel: &[f32], out: Out<'_>) {
    assert!(panel.len() >= k * NR);
    match a {
        ATile::Packed(apack) => {
            assert!(apack.len() >= k * MR);
            // SAFETY: the caller's promises; apack holds k·MR floats (asserted).
            unsafe { kernel_avx512_from::<false>(k, apack.as_ptr(), 0, panel, out) }
        }
        // SAFETY: the caller's promises.
        ATile::Rows(ptr, stride) => unsafe {
            kernel_avx512_from::<true>(k, ptr, stride, panel, out)
        },
    }
}

/// [`kernel_avx512`] compiled once per way of reading `A` (`ROWS`: `a[r·stride + kk]`,
/// otherwise `a[kk·MR + r]`).
///
/// # Safety
/// Those of [`kernel_avx512`], with `a` addressing `A`'s `MR × k` floats as `ROWS`
/// says, and `panel` `k · NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn kernel_avx512_from<const ROWS: bool>(
    k: usize,
    a: *const f32,
    stride: isize,
    panel: &[f32],
    out: Out<'_>,
) {
    use std::arch::x86_64::*;
    let b = panel.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for kk in 0..k {
        // SAFETY: kk < k: inside the panel's k·NR floats.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps(b.add(kk * NR)),
                _mm512_loadu_ps(b.add(kk * NR + 16)),
            )
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: r < MR and kk < k: an element of A's tile, addressed as the caller
            // promises.
            let av = _mm512_set1_ps(unsafe {
                match ROWS {
                    true => *a.offset(r as isize * stride + kk as isize),
                    false => *a.add(kk * MR + r),
                }
            });
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    match out {
        Out::Tile(tile) => {
            for (t, row) in tile.iter_mut().zip(&acc) {
                // SAFETY: each row of the tile holds NR = 32 floats.
                unsafe {
                    _mm512_storeu_ps(t.as_mut_ptr(), row[0]);
                    _mm512_storeu_ps(t.as_mut_ptr().add(16), row[1]);
                }
            }
        }
        Out::C(c, ldc, add, bias) => {
            // No bias: nothing added (adding +0.0 would turn a -0.0 into +0.0, which the
            // partial tiles' path keeps).
            let bias = match bias.is_null() {
                true => None,
                // SAFETY: the caller's promise: NR bias floats.
                false => Some(unsafe { (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16))) }),
            };
            for (r, row) in acc.iter().enumerate() {
                // SAFETY: the caller's promise: MR rows of NR floats, ldc apart.
                unsafe {
                    let o = c.offset(r as isize * ldc);
                    let (mut v0, mut v1) = match bias {
                        Some((b0, b1)) => (_mm512_add_ps(row[0], b0), _mm512_add_ps(row[1], b1)),
                        None => (row[0], row[1]),
                    };
                    if add {
                        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(o));
                        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(o.add(16)));
                    }
                    _mm512_storeu_ps(o, v0);
                    _mm512_storeu_ps(o.add(16), v1);
                }
            }
        }
    }
}

/// AVX2 + FMA: the tile in three blocks — rows 0–5 of columns 0–15, rows 0–5 of
/// columns 16–31 (12 ymm accumulators each, the panel's two vectors and one broadcast:
/// 15 registers) and rows 6–7 of all 32 columns (8 accumulators) — each one pass over
/// `k` (16 registers do not hold the whole tile). `A` and the output as for
/// [`kernel_avx512`].
///
/// # Safety
/// The processor has AVX2 and FMA; the rest as for [`kernel_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(k: usize, a: ATile<'_>, panel: &[f32], mut out: Out<'_>) {
    assert!(panel.len() >= k * NR);
    // (first element, stride between rows, stride between kk) of A's tile.
    let a = match a {
        ATile::Packed(apack) => {
            assert!(apack.len() >= k * MR);
            (apack.as_ptr(), 1, MR as isize)
        }
        ATile::Rows(ptr, stride) => (ptr, stride, 1),
    };
    // SAFETY: the caller's promises; each block's rows and columns lie in the tile.
    unsafe {
        avx2_block::<6, 2>(k, a, panel, &mut out, 0, 0);
        avx2_block::<6, 2>(k, a, panel, &mut out, 0, 16);
        avx2_block::<2, 4>(k, a, panel, &mut out, 6, 0);
    }
}

/// Rows `r0 .. r0 + R`, columns `c0 .. c0 + 8·V` of [`kernel_avx2`]'s tile, in one pass
/// over `k`, written to `out` (bias added, C added to, as [`kernel_avx512`] does).
///
/// # Safety
/// Those of [`kernel_avx2`], with `a = (ptr, row stride, kk stride)` addressing A's
/// tile; `r0 + R ≤ MR` and `c0 + 8·V ≤ NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn avx2_block<const R: usize, const V: usize>(
    k: usize,
    (a, ars, aks): (*const f32, isize, isize),
    panel: &[f32],
    out: &mut Out<'_>,
    r0: usize,
    c0: usize,
) {
    use std::arch::x86_64::*;
    let b = panel.as_ptr();
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    for kk in 0..k {
        let mut bv = [_mm256_setzero_ps(); V];
        for (c, v) in bv.iter_mut().enumerate() {
            // SAFETY: kk < k and c0 + 8·c + 8 ≤ NR: inside the panel's row kk.
            *v = unsafe { _mm256_loadu_ps(b.add(kk * NR + c0 + 8 * c)) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: kk < k and r0 + r < MR: an element of A's tile as addressed.
            let av =
                _mm256_set1_ps(unsafe { *a.offset((r0 + r) as isize * ars + kk as isize * aks) });
            for (v, bv) in row.iter_mut().zip(&bv) {
                *v = _mm256_fmadd_ps(av, *bv, *v);
            }
        }
    }
    match out {
        Out::Tile(tile) => {
            for (r, row) in acc.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    // SAFETY: c0 + 8·c + 8 ≤ NR floats of tile row r0 + r.
                    unsafe { _mm256_storeu_ps(tile[r0 + r].as_mut_ptr().add(c0 + 8 * c), *v) };
                }
            }
        }
        &mut Out::C(cp, ldc, add, bias) => {
            for (r, row) in acc.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    let col = c0 + 8 * c;
                    // SAFETY: the caller's promise: MR rows of NR floats, ldc apart, and
                    // NR bias floats or null.
                    unsafe {
                        let o = cp.offset((r0 + r) as isize * ldc).add(col);
                        // No bias: nothing added (see kernel_avx512).
                        let mut x = match bias.is_null() {
                            true => *v,
                            false => _mm256_add_ps(*v, _mm256_loadu_ps(bias.add(col))),
                        };
                        if add {
                            x = _mm256_add_ps(x, _mm256_loadu_ps(o));
                        }
                        _mm256_storeu_ps(o, x);
                    }
                }
            }
        }
    }
}

/// Portable: the same sums in plain Rust.
fn kernel_portable(k: usize, apack: &[f32], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
    let mut t = [[0f32; NR]; MR];
    for (av, bv) in apack.chunks_exact(MR).zip(panel.chunks_exact(NR)).take(k) {
        for r in 0..MR {
            for c in 0..NR {
                t[r][c] += av[r] * bv[c];
            }
        }
    }
    *tile = t;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Every microkernel this processor runs gives the portable one's tile.
    #[test]
    fn kernels_agree() {
        // Under WGPU_RNN_CPU_ISA (as .ci/run sets it) the override took effect: a kernel
        // this processor has is the one asked for.
        if let Ok(asked) = std::env::var("WGPU_RNN_CPU_ISA") {
            let has = match asked.as_str() {
                "avx2" => detect() != Isa::Portable,
                "portable" => true,
                _ => false,
            };
            if has {
                assert_eq!(isa_name(), asked, "WGPU_RNN_CPU_ISA={asked}");
            }
        }
        let k = 37;
        let apack: Vec<f32> = (0..k * MR).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let panel: Vec<f32> = (0..k * NR).map(|i| ((i * 5) % 11) as f32 * 0.25).collect();
        let mut want = [[0f32; NR]; MR];
        kernel_portable(k, &apack, &panel, &mut want);
        #[cfg(target_arch = "x86_64")]
        {
            let mut got = [[0f32; NR]; MR];
            if isa() == Isa::Avx512 {
                // SAFETY: detected.
                unsafe { kernel_avx512(k, ATile::Packed(&apack), &panel, Out::Tile(&mut got)) };
                assert_eq!(got, want, "avx512");
                // The same tile read from A's rows (k-major apack read as A [k, MR]ᵀ:
                // rows of an A [MR, k] built from it).
                let rows: Vec<f32> = (0..MR * k).map(|i| apack[(i % k) * MR + i / k]).collect();
                // SAFETY: detected; MR rows of k floats, k apart.
                unsafe {
                    kernel_avx512(
                        k,
                        ATile::Rows(rows.as_ptr(), k as isize),
                        &panel,
                        Out::Tile(&mut got),
                    )
                };
                assert_eq!(got, want, "avx512 rows");
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: detected.
                unsafe { kernel_avx2(k, ATile::Packed(&apack), &panel, Out::Tile(&mut got)) };
                assert_eq!(got, want, "avx2");
                let rows: Vec<f32> = (0..MR * k).map(|i| apack[(i % k) * MR + i / k]).collect();
                // SAFETY: detected; MR rows of k floats, k apart.
                unsafe {
                    kernel_avx2(
                        k,
                        ATile::Rows(rows.as_ptr(), k as isize),
                        &panel,
                        Out::Tile(&mut got),
                    )
                };
                assert_eq!(got, want, "avx2 rows");
            }
        }
    }

    /// Every size class (tile and panel edges, K = 1, threads) against ndarray's product.
    #[test]
    fn packed_gemm_matches_ndarray() {
        let mut s = 1u32;
        let mut rnd = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / 16_777_216.0 - 0.5
        };
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 7),
            (8, 32, 32),
            (9, 33, 65),
            (17, 130, 100),
            (16, 256, 1024),
            (520, 130, 300),
            (70, 600, 40),
            (9, 513, 33),
            (4, 0, 5),
        ] {
            let a = Array2::from_shape_simple_fn((m, k), &mut rnd);
            let w = Array2::from_shape_simple_fn((n, k), &mut rnd);
            let c0 = Array2::from_shape_simple_fn((m, n), &mut rnd);
            let want = a.dot(&w.t());
            for acc in [false, true] {
                let mut c = c0.clone();
                let p = Packed::plain(w.t());
                gemm(a.view(), &p, c.view_mut(), acc);
                let want = if acc { &want + &c0 } else { want.clone() };
                let err = (&c - &want).iter().fold(0f32, |e, d| e.max(d.abs()));
                // K = 0: C is exactly 0 or c0 (no products to round).
                assert!(
                    if k == 0 {
                        err == 0.0
                    } else {
                        err < 1e-4 * (k as f32).sqrt()
                    },
                    "{m}×{k}×{n} acc {acc}: {err}"
                );
                // With a bias on every row, written as the product is.
                let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01 - 0.3).collect();
                let mut cb = c0.clone();
                gemm_bias(a.view(), &p, Some(&bias), cb.view_mut(), acc);
                let wb = &want + &ndarray::ArrayView1::from(&bias[..]);
                let err = (&cb - &wb).iter().fold(0f32, |e, d| e.max(d.abs()));
                assert!(
                    if k == 0 {
                        err == 0.0
                    } else {
                        err < 1e-4 * (k as f32).sqrt()
                    },
                    "{m}×{k}×{n} bias acc {acc}: {err}"
                );
                let (mut cbt, at) = (c0.t().to_owned(), a.t().to_owned());
                gemm_bias(at.t(), &p, Some(&bias), cbt.view_mut().reversed_axes(), acc);
                assert_eq!(cbt.t(), cb);
                // A transposed A and C: the same numbers.
                let (at, mut ct) = (a.t().to_owned(), c0.t().to_owned());
                gemm(at.t(), &p, ct.view_mut().reversed_axes(), acc);
                assert_eq!(ct.t(), c);
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;
    use ndarray::Array2;

    /// The best of 15 trials of `f` (preempted trials are slower, never faster), in
    /// seconds per call.
    fn best(reps: usize, mut f: impl FnMut()) -> f64 {
        (0..15)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    f();
                }
                t.elapsed().as_secs_f64() / reps as f64
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// GFLOP/s of the packed product at the step and projection shapes, best of 15
    /// trials (not a check: `cargo test --release --lib gemm_speed -- --ignored
    /// --nocapture`).
    #[test]
    #[ignore]
    fn gemm_speed() {
        for (m, k, n) in [
            (16, 256, 1024),
            (8, 256, 1024),
            (64, 512, 2048),
            (32, 512, 2048),
            (800, 128, 1024),
            (1024, 800, 256),
            (8, 384, 1024),
            (16, 384, 1024),
            (32, 768, 2048),
            (64, 768, 2048),
            (1024, 800, 128),
        ] {
            let a = Array2::from_elem((m, k), 0.5f32);
            let w = Array2::from_elem((n, k), 0.25f32);
            let p = Packed::plain(w.t());
            let mut c = Array2::zeros((m, n));
            if std::env::var_os("DW").is_some() {
                // dW = dGᵀ·X as the backward calls it: dG [k, m], X [k, n], X packed per call.
                let dg = Array2::from_elem((k, m), 0.5f32);
                let x = Array2::from_elem((k, n), 0.25f32);
                let reps = (2e8 / (2.0 * (m * k * n) as f64)) as usize + 1;
                let s = best(reps, || {
                    let q = Packed::plain(x.view());
                    gemm_rows(dg.t(), &q, None, c.view_mut(), false)
                });
                let s2 = best(reps, || {
                    let _q = Packed::plain(x.view());
                });
                println!(
                    "dW {m}x{k}x{n}: {:.1} GFLOP/s, pack {:.1} µs",
                    2.0 * (m * k * n) as f64 / s / 1e9,
                    s2 * 1e6
                );
            }
            let reps = (2e8 / (2.0 * (m * k * n) as f64)) as usize + 1;
            let s = best(reps, || gemm(a.view(), &p, c.view_mut(), true));
            let s1 = best(reps, || gemm_rows(a.view(), &p, None, c.view_mut(), true));
            // A transposed (the weight gradients' dGᵀ): its columns contiguous.
            let at = a.t().to_owned();
            let s2 = best(reps, || gemm_rows(at.t(), &p, None, c.view_mut(), true));
            let f = 2.0 * (m * k * n) as f64;
            println!(
                "{m}x{k}x{n}: packed {:.1} GFLOP/s ({:.1} µs), one thread {:.1} GFLOP/s, Aᵀ {:.1} GFLOP/s, isa {:?}",
                f / s / 1e9,
                s * 1e6,
                f / s1 / 1e9,
                f / s2 / 1e9,
                isa()
            );
        }
    }
}
