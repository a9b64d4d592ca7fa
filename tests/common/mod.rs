//! Shared test helpers: numpy's legacy generator, random arrays, error measures.
#![allow(dead_code)]

pub mod gpu;
pub mod layout;

use ndarray::{Array, Array2, Array3, ArrayBase, Data, Dimension, ShapeBuilder};
use wgpu_rnn::{Cell, Params};

/// numpy's legacy `RandomState` (MT19937 + polar-method `randn` with a cached value),
/// bit-compatible with `np.random.seed(s); np.random.randn(...)`.
pub struct NumpyRng {
    mt: [u32; 624],
    idx: usize,
    cached: Option<f64>,
}

impl NumpyRng {
    /// `np.random.seed(seed)` (MT19937 `init_genrand`).
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1812433253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        NumpyRng {
            mt,
            idx: 624,
            cached: None,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in `[0, 1)` with 53 random bits, as numpy's `random_sample`.
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67108864.0 + b) / 9007199254740992.0
    }

    /// One standard normal, numpy's legacy polar method.
    pub fn gauss(&mut self) -> f64 {
        if let Some(v) = self.cached.take() {
            return v;
        }
        loop {
            let x1 = 2.0 * self.uniform() - 1.0;
            let x2 = 2.0 * self.uniform() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached = Some(f * x1);
                return f * x2;
            }
        }
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
/// GEMM's (128 × 64 tiles, K in steps of 16), and a large case (I = 1030, H = 520).
pub const GRID: [(usize, usize, usize, usize); 12] = [
    (1, 1, 1, 1),
    (17, 33, 2, 1),
    (3, 17, 5, 3),
    (17, 33, 3, 1),
    (33, 65, 17, 4),
    (65, 3, 33, 2),
    (130, 130, 6, 3),
    (5, 130, 65, 2),
    (130, 17, 4, 5),
    (64, 64, 16, 2),
    (3, 1, 130, 3),
    (1030, 520, 3, 2),
];

/// A random problem for a cell: parameters of the usual scale, inputs, initial states,
/// and upstream gradients (the LSTM's nonzero c0 and final-cell gradient included).
pub struct Case {
    pub p: Params<f64>,
    pub x: Array3<f64>,
    pub h0: Array2<f64>,
    pub c0: Option<Array2<f64>>,
    pub dh: Array3<f64>,
    pub dc: Option<Array2<f64>>,
}

/// Draws a [`Case`] from numpy's generator seeded with `seed`.
pub fn case(cell: Cell, i: usize, h: usize, b: usize, t: usize, seed: u32) -> Case {
    let mut rng = NumpyRng::new(seed);
    let g = cell.gates();
    let k = 1.0 / (h as f64).sqrt();
    let lstm = cell.has_cell_state();
    Case {
        p: Params::new(
            cell,
            rng.uniform_array((g * h, i), -k, k),
            rng.uniform_array((g * h, h), -k, k),
            rng.uniform_array(g * h, -k, k),
            rng.uniform_array(g * h, -k, k),
        )
        .unwrap(),
        x: rng.randn((t, b, i)),
        h0: rng.uniform_array((b, h), -1.0, 1.0),
        c0: lstm.then(|| rng.randn((b, h))),
        dh: rng.randn((t, b, h)),
        dc: lstm.then(|| rng.randn((b, h))),
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

/// Draws Wf, bf, Wi, bi, Wo, bo, Wc, bc (and Wy, by when `head`).
pub fn lstm_params(rng: &mut NumpyRng, head: bool) -> wgpu_rnn::notebook::LstmParameters<f64> {
    let wf = rng.randn((5, 8));
    let bf = rng.randn((5, 1));
    let wi = rng.randn((5, 8));
    let bi = rng.randn((5, 1));
    let wo = rng.randn((5, 8));
    let bo = rng.randn((5, 1));
    let wc = rng.randn((5, 8));
    let bc = rng.randn((5, 1));
    let (wy, by) = if head {
        (rng.randn((2, 5)), rng.randn((2, 1)))
    } else {
        (Array2::zeros((2, 5)), Array2::zeros((2, 1)))
    };
    wgpu_rnn::notebook::LstmParameters {
        wf,
        bf,
        wi,
        bi,
        wc,
        bc,
        wo,
        bo,
        wy,
        by,
    }
}

/// The notebook's LSTM weights in the library's packed layout.
pub fn lstm_packed(p: &wgpu_rnn::notebook::LstmParameters<f64>) -> Params<f64> {
    Params::lstm_from_notebook(
        p.wf.view(),
        p.bf.view(),
        p.wi.view(),
        p.bi.view(),
        p.wc.view(),
        p.bc.view(),
        p.wo.view(),
        p.bo.view(),
    )
    .unwrap()
}

impl Case {
    /// The f64 CPU forward and backward of the case.
    pub fn cpu_grads(&self) -> (wgpu_rnn::cpu::Trace<f64>, wgpu_rnn::cpu::Grads<f64>) {
        let tr = wgpu_rnn::cpu::forward(
            &self.p,
            self.x.view(),
            Some(self.h0.view()),
            self.c0.as_ref().map(|a| a.view()),
        )
        .unwrap();
        let g = wgpu_rnn::cpu::backward(
            &self.p,
            &tr,
            self.dh.view(),
            self.dc.as_ref().map(|a| a.view()),
        )
        .unwrap();
        (tr, g)
    }
}
