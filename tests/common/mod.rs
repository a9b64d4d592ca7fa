//! Shared test helpers: numpy's legacy generator, random arrays, error measures.
#![allow(dead_code)]

pub mod gpu;
pub mod layout;
pub mod recipes;

use ndarray::{Array, Array2, Array3, ArrayBase, Data, Dimension, ShapeBuilder};
use wgpu_rnn::cpu::{self, Grads, Trace};
use wgpu_rnn::{Cell, Params, Real};

/// numpy's legacy `RandomState` for the tests: the crate's own
/// [`wgpu_rnn::numpy::RandomState`] (checked against numpy's published draws in
/// `notebook_parity.rs` and `notebook_utils.rs`), with the array helpers the tests use.
pub struct NumpyRng(wgpu_rnn::numpy::RandomState);

impl NumpyRng {
    /// `np.random.seed(seed)`.
    pub fn new(seed: u32) -> Self {
        NumpyRng(wgpu_rnn::numpy::RandomState::new(seed))
    }

    /// A double in `[0, 1)` with 53 random bits, as numpy's `random_sample`.
    pub fn uniform(&mut self) -> f64 {
        self.0.random_sample()
    }

    /// One standard normal, numpy's legacy polar method.
    pub fn gauss(&mut self) -> f64 {
        self.0.randn()
    }

    /// `np.random.randn(*shape)` in C order.
    pub fn randn<D: Dimension, Sh: ShapeBuilder<Dim = D>>(&mut self, shape: Sh) -> Array<f64, D> {
        Array::from_shape_simple_fn(shape, || self.gauss())
    }

    /// Uniform values in `[lo, hi)`.
    pub fn uniform_array<D: Dimension, Sh: ShapeBuilder<Dim = D>>(
        &mut self,
        shape: Sh,
        lo: f64,
        hi: f64,
    ) -> Array<f64, D> {
        Array::from_shape_simple_fn(shape, || lo + (hi - lo) * self.uniform())
    }
}

/// `max|got - want| / max|want|` (absolute when `want` is all zero).
pub fn rel_err<S1, S2, D>(got: &ArrayBase<S1, D>, want: &ArrayBase<S2, D>) -> f64
where
    S1: Data,
    S1::Elem: Copy + Into<f64>,
    S2: Data,
    S2::Elem: Copy + Into<f64>,
    D: Dimension,
{
    assert_eq!(got.shape(), want.shape(), "shape mismatch");
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (&g, &w) in got.iter().zip(want.iter()) {
        let (g, w): (f64, f64) = (g.into(), w.into());
        if !g.is_finite() {
            return f64::INFINITY;
        }
        num = num.max((g - w).abs());
        den = den.max(w.abs());
    }
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Asserts `rel_err(got, want) <= tol`, naming the array.
pub fn assert_close<S1, S2, D>(
    name: &str,
    got: &ArrayBase<S1, D>,
    want: &ArrayBase<S2, D>,
    tol: f64,
) where
    S1: Data,
    S1::Elem: Copy + Into<f64>,
    S2: Data,
    S2::Elem: Copy + Into<f64>,
    D: Dimension,
{
    let e = rel_err(got, want);
    assert!(e <= tol, "{name}: max|got-ref|/max|ref| = {e:e} > {tol:e}");
}

/// Asserts that each published value matches to `tol` (absolute).
pub fn assert_values(name: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{name}[{k}]: got {g:.12}, published {w:.12} (|diff| {:e} > {tol:e})",
            (g - w).abs()
        );
    }
}

/// (I, H, B, T): sizes 1, 3, 17, 33, 65, 130 across every axis, T = 1, and the step
/// kernel's edges (B not a multiple of its 1/2/4/8 rows, H not a multiple of 64), the
/// GEMM's (128 × 64 tiles, K in steps of 16), a large case (I = 1030, H = 520), and one
/// with enough workgroups (B = 257: 33 groups of 8 rows, × 2 of 256 units) that a CPU
/// adapter with up to 66 threads still takes 4 units per invocation (the last group of
/// units partial: H = 260).
#[rustfmt::skip]
pub const GRID: [(usize, usize, usize, usize); 13] = [
    (1, 1, 1, 1), (17, 33, 2, 1), (3, 17, 5, 3), (17, 33, 3, 1),
    (33, 65, 17, 4), (65, 3, 33, 2), (130, 130, 6, 3), (5, 130, 65, 2),
    (130, 17, 4, 5), (64, 64, 16, 2), (3, 1, 130, 3), (1030, 520, 3, 2),
    (5, 260, 257, 2),
];

/// Runs `check` on a [`case`] of every cell at every `(I, H, B, T)` of `shapes`, seeded
/// `seed(index of the cell in Cell::ALL, index of the shape)` and labelled
/// `"{prefix}{cell:?} I={i} H={h} B={b} T={t}"`.
pub fn each_case(
    shapes: &[(usize, usize, usize, usize)],
    seed: impl Fn(u32, u32) -> u32,
    prefix: &str,
    mut check: impl FnMut(&Case, &str),
) {
    for (c, cell) in Cell::ALL.into_iter().enumerate() {
        for (k, &(i, h, b, t)) in shapes.iter().enumerate() {
            let label = format!("{prefix}{cell:?} I={i} H={h} B={b} T={t}");
            check(&case(cell, i, h, b, t, seed(c as u32, k as u32)), &label);
        }
    }
}

/// Every cell's [`case`] of I = 9, H = 17, B = 5, T = 4 (seed 7) with its inputs pushed
/// to ±30 by sign (every gate saturated), labelled `"{cell:?} saturated"`.
pub fn saturated_cases() -> impl Iterator<Item = (Case, String)> {
    Cell::ALL.into_iter().map(|cell| {
        let mut c = case(cell, 9, 17, 5, 4, 7);
        c.x.mapv_inplace(|v| if v >= 0.0 { 30.0 } else { -30.0 });
        (c, format!("{cell:?} saturated"))
    })
}

/// A random problem for a cell: parameters, inputs, initial states, and upstream
/// gradients (the LSTM's nonzero c0 and final-cell gradient included), in f64 or f32.
#[derive(Clone)]
pub struct Case<A = f64> {
    pub p: Params<A>,
    pub x: Array3<A>,
    pub h0: Array2<A>,
    pub c0: Option<Array2<A>>,
    pub dh: Array3<A>,
    pub dc: Option<Array2<A>>,
}

/// Draws a [`Case`] from numpy's generator seeded with `seed`: parameters of the usual
/// scale (uniform in ±1/√H), h0 uniform in ±1, the rest normal.
pub fn case(cell: Cell, i: usize, h: usize, b: usize, t: usize, seed: u32) -> Case {
    let mut rng = NumpyRng::new(seed);
    let g = cell.gates() * h;
    let k = 1.0 / (h as f64).sqrt();
    let w_ih = rng.uniform_array((g, i), -k, k);
    let w_hh = rng.uniform_array((g, h), -k, k);
    let [b_ih, b_hh] = [(); 2].map(|_| rng.uniform_array(g, -k, k));
    let p = Params::new(cell, w_ih, w_hh, b_ih, b_hh).unwrap();
    Case::inputs(p, &mut rng, b, t, |rng, bh| {
        rng.uniform_array(bh, -1.0, 1.0)
    })
}

impl Case {
    /// A case on `p` whose inputs are drawn from `rng` in this order: x `[t, b, I]`, h0
    /// `[b, H]` by `draw_h0`, then (normal) c0 for cells with a cell state, dh
    /// `[t, b, H]`, and the final-cell gradient for cells with a cell state.
    pub fn inputs(
        p: Params<f64>,
        rng: &mut NumpyRng,
        b: usize,
        t: usize,
        draw_h0: impl FnOnce(&mut NumpyRng, (usize, usize)) -> Array2<f64>,
    ) -> Case {
        let (i, h) = (p.input_size(), p.hidden_size());
        let lstm = p.cell.has_cell_state();
        Case {
            x: rng.randn((t, b, i)),
            h0: draw_h0(rng, (b, h)),
            c0: lstm.then(|| rng.randn((b, h))),
            dh: rng.randn((t, b, h)),
            dc: lstm.then(|| rng.randn((b, h))),
            p,
        }
    }
}

impl<A: Real> Case<A> {
    /// The same case in another float type.
    pub fn cast<B: Real>(&self) -> Case<B> {
        let c = |v: &A| B::from_f64(v.to_f64());
        Case {
            p: self.p.cast(),
            x: self.x.map(c),
            h0: self.h0.map(c),
            c0: self.c0.as_ref().map(|a| a.map(c)),
            dh: self.dh.map(c),
            dc: self.dc.as_ref().map(|a| a.map(c)),
        }
    }

    /// The CPU forward of the case from its h0 (and c0).
    pub fn cpu_forward(&self) -> Trace<A> {
        cpu::forward(
            &self.p,
            self.x.view(),
            Some(self.h0.view()),
            self.c0.as_ref().map(|a| a.view()),
        )
        .unwrap()
    }

    /// The CPU forward and backward of the case (upstream gradients dh and dc).
    pub fn cpu_grads(&self) -> (Trace<A>, Grads<A>) {
        let tr = self.cpu_forward();
        let g = cpu::backward(
            &self.p,
            &tr,
            self.dh.view(),
            self.dc.as_ref().map(|a| a.view()),
        )
        .unwrap();
        (tr, g)
    }
}

/// The gradients in another float type.
pub fn cast_grads<A: Real, B: Real>(g: &Grads<A>) -> Grads<B> {
    let c = |v: &A| B::from_f64(v.to_f64());
    Grads {
        dx: g.dx.map(c),
        dh0: g.dh0.map(c),
        dc0: g.dc0.as_ref().map(|a| a.map(c)),
        dw_ih: g.dw_ih.map(c),
        dw_hh: g.dw_hh.map(c),
        db_ih: g.db_ih.map(c),
        db_hh: g.db_hh.map(c),
    }
}

/// Asserts that every gradient of `got` is within `tol` of `want` ([`assert_close`],
/// each named `"{label} dx"` and so on): dx, dh0, dw_ih, dw_hh, db_ih, db_hh, and dc0,
/// which must be present on both sides or on neither.
pub fn assert_grads_close<A, B>(label: &str, got: &Grads<A>, want: &Grads<B>, tol: f64)
where
    A: Copy + Into<f64>,
    B: Copy + Into<f64>,
{
    let name = |n: &str| format!("{label} {n}");
    assert_close(&name("dx"), &got.dx, &want.dx, tol);
    assert_close(&name("dh0"), &got.dh0, &want.dh0, tol);
    assert_close(&name("dw_ih"), &got.dw_ih, &want.dw_ih, tol);
    assert_close(&name("dw_hh"), &got.dw_hh, &want.dw_hh, tol);
    assert_close(&name("db_ih"), &got.db_ih, &want.db_ih, tol);
    assert_close(&name("db_hh"), &got.db_hh, &want.db_hh, tol);
    match (&got.dc0, &want.dc0) {
        (Some(g), Some(w)) => assert_close(&name("dc0"), g, w, tol),
        (None, None) => {}
        (g, w) => panic!("{label}: dc0 {:?} vs {:?}", g.is_some(), w.is_some()),
    }
}

/// The array in f32.
pub fn f32a<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> ndarray::Array<f32, D> {
    a.mapv(|v| v as f32)
}

/// Asserts an error (of a shape, a value or a size) that names `arg`.
pub fn expect_err<T: std::fmt::Debug>(r: wgpu_rnn::Result<T>, arg: &str) {
    use wgpu_rnn::Error;
    match r {
        Err(Error::Shape { arg: a, .. })
        | Err(Error::Invalid { arg: a, .. })
        | Err(Error::TooLarge { arg: a, .. })
            if a == arg => {}
        other => panic!("expected an error naming `{arg}`, got {other:?}"),
    }
}
