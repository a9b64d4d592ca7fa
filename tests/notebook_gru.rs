//! The lecture's GRU in the notebook's layout (`notebook::gru_*`): a step against the
//! lecture's equations written out by hand, the sequence against its steps, backward
//! against f64 central differences of every input and parameter, and bad shapes.

mod common;

use common::{assert_close, expect_err, NumpyRng};
use ndarray::{s, Array, Array2, Array3, ArrayViewD, ArrayViewMutD, Axis, Dimension};
use wgpu_rnn::notebook::*;

/// A difference that is not a number counts as infinitely large (`f64::max` would skip
/// it and let a NaN-poisoned result pass).
fn nan_inf(d: f64) -> f64 {
    if d.is_nan() {
        f64::INFINITY
    } else {
        d
    }
}

/// Wu, bu, Wr, br, Wc, bc for `n_a` units and `n_x` inputs, and a head of `n_y` classes.
fn gru_params(rng: &mut NumpyRng, n_a: usize, n_x: usize, n_y: usize) -> GruParameters<f64> {
    GruParameters {
        wu: rng.randn((n_a, n_a + n_x)),
        bu: rng.randn((n_a, 1)),
        wr: rng.randn((n_a, n_a + n_x)),
        br: rng.randn((n_a, 1)),
        wc: rng.randn((n_a, n_a + n_x)),
        bc: rng.randn((n_a, 1)),
        wy: rng.randn((n_y, n_a)),
        by: rng.randn((n_y, 1)),
    }
}

/// Draws x `(n_x, m, t)`, c0 `(n_a, m)`, then the parameters of `n_a` units, `n_x`
/// inputs and 2 classes.
fn draws(
    rng: &mut NumpyRng,
    (n_x, n_a): (usize, usize),
    (m, t): (usize, usize),
) -> (Array3<f64>, Array2<f64>, GruParameters<f64>) {
    let x = rng.randn((n_x, m, t));
    let c0 = rng.randn((n_a, m));
    (x, c0, gru_params(rng, n_a, n_x, 2))
}

/// The only step of a one-step sequence `(n_x, m, 1)`.
fn step(x: &Array3<f64>) -> Array2<f64> {
    x.index_axis(Axis(2), 0).to_owned()
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `Γ_u, Γ_r, c̃, c⟨t⟩, ŷ` of one step, straight from the lecture's equations.
fn lecture_step(
    p: &GruParameters<f64>,
    xt: &Array2<f64>,
    c_prev: &Array2<f64>,
) -> [Array2<f64>; 5] {
    let concat = ndarray::concatenate![Axis(0), c_prev.view(), xt.view()];
    let gu = (p.wu.dot(&concat) + &p.bu).mapv(sigmoid);
    let gr = (p.wr.dot(&concat) + &p.br).mapv(sigmoid);
    let gated = ndarray::concatenate![Axis(0), (&gr * c_prev).view(), xt.view()];
    let cct = (p.wc.dot(&gated) + &p.bc).mapv(f64::tanh);
    let c_next = &gu * &cct + (1.0 - &gu) * c_prev;
    let z = p.wy.dot(&c_next) + &p.by;
    let e = z.mapv(f64::exp);
    let y = &e / &e.sum_axis(Axis(0)).insert_axis(Axis(0));
    [gu, gr, cct, c_next, y]
}

#[test]
fn gru_cell_forward_matches_the_lecture_equations() {
    let (x, c_prev, p) = draws(&mut NumpyRng::new(3), (3, 5), (10, 1));
    let xt = step(&x);
    let (c_next, yt, cache) = gru_cell_forward(xt.view(), c_prev.view(), &p).unwrap();
    let [gu, gr, cct, want_c, want_y] = lecture_step(&p, &xt, &c_prev);
    assert_close("c_next", &c_next, &want_c, 1e-12);
    assert_close("yt_pred", &yt, &want_y, 1e-12);
    assert_close("cache gu", &cache.gu, &gu, 1e-12);
    assert_close("cache gr", &cache.gr, &gr, 1e-12);
    assert_close("cache cct", &cache.cct, &cct, 1e-12);
    assert_close("cache c_prev", &cache.c_prev, &c_prev, 0.0);
}

#[test]
fn gru_forward_is_the_cell_step_by_step() {
    let (x, c0, p) = draws(&mut NumpyRng::new(5), (3, 5), (4, 6));
    let (c, y, caches) = gru_forward(x.view(), c0.view(), &p).unwrap();
    let mut state = c0.clone();
    for t in 0..6 {
        let xt = x.slice(s![.., .., t]).to_owned();
        let [gu, _, _, want_c, want_y] = lecture_step(&p, &xt, &state);
        assert_close("c", &c.slice(s![.., .., t]), &want_c, 1e-12);
        assert_close("y", &y.slice(s![.., .., t]), &want_y, 1e-12);
        assert_close("cache gu", &caches.caches[t].gu, &gu, 1e-12);
        assert_close("cache c_prev", &caches.caches[t].c_prev, &state, 1e-12);
        state = want_c;
    }
}

/// Everything the GRU's loss depends on.
#[derive(Clone)]
struct Inputs {
    x: Array3<f64>,
    c0: Array2<f64>,
    p: GruParameters<f64>,
}

impl Inputs {
    /// `L = Σ w ⊙ c` over the whole sequence.
    fn loss(&self, w: &Array3<f64>) -> f64 {
        let (c, _, _) = gru_forward(self.x.view(), self.c0.view(), &self.p).unwrap();
        (&c * w).sum()
    }
}

/// One array of [`Inputs`].
type Pick = fn(&mut Inputs) -> ArrayViewMutD<'_, f64>;

/// The array as a view of any dimension.
fn flat<D: Dimension>(a: &Array<f64, D>) -> ArrayViewD<'_, f64> {
    a.view().into_dyn()
}

/// The array as a mutable view of any dimension.
fn flat_mut<D: Dimension>(a: &mut Array<f64, D>) -> ArrayViewMutD<'_, f64> {
    a.view_mut().into_dyn()
}

#[test]
fn gru_backward_matches_finite_differences() {
    // (n_x, n_a, m, T): T = 1 and n_a = 1 included.
    for (case, &(n_x, n_a, m, t)) in [(1, 1, 1, 1), (3, 4, 2, 3), (2, 1, 3, 4), (2, 3, 1, 1)]
        .iter()
        .enumerate()
    {
        let mut rng = NumpyRng::new(10 + case as u32);
        let (x, c0, p) = draws(&mut rng, (n_x, n_a), (m, t));
        let w = rng.randn((n_a, m, t));
        let (_, _, caches) = gru_forward(x.view(), c0.view(), &p).unwrap();
        let g = gru_backward(w.view(), &caches).unwrap();
        let inputs = Inputs { x, c0, p };
        let arrays: [(&str, Pick, ArrayViewD<f64>); 8] = [
            ("x", |v| flat_mut(&mut v.x), flat(&g.dx)),
            ("c0", |v| flat_mut(&mut v.c0), flat(&g.dc0)),
            ("Wu", |v| flat_mut(&mut v.p.wu), flat(&g.w.dwu)),
            ("bu", |v| flat_mut(&mut v.p.bu), flat(&g.w.dbu)),
            ("Wr", |v| flat_mut(&mut v.p.wr), flat(&g.w.dwr)),
            ("br", |v| flat_mut(&mut v.p.br), flat(&g.w.dbr)),
            ("Wc", |v| flat_mut(&mut v.p.wc), flat(&g.w.dwc)),
            ("bc", |v| flat_mut(&mut v.p.bc), flat(&g.w.dbc)),
        ];
        for (name, pick, analytic) in arrays {
            let shape = pick(&mut inputs.clone()).shape().to_vec();
            assert_eq!(analytic.shape(), shape, "case {case}: d{name} shape");
            // Central differences of the loss with respect to every element of the array.
            let eps = 1e-5;
            let numeric: Vec<f64> = (0..analytic.len())
                .map(|k| {
                    let moved = [eps, -eps].map(|e| {
                        let mut v = inputs.clone();
                        *pick(&mut v).iter_mut().nth(k).unwrap() += e;
                        v.loss(&w)
                    });
                    (moved[0] - moved[1]) / (2.0 * eps)
                })
                .collect();
            let a = ndarray::Array1::from_iter(analytic.iter().copied());
            let n = ndarray::Array1::from(numeric);
            // Relative to the gradient, or to the loss's own scale where the gradient is
            // far below it (central differences carry the loss's rounding / eps).
            let scale = n.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let e = (&a - &n)
                .iter()
                .fold(0.0f64, |m, v| m.max(nan_inf(v.abs())))
                / scale;
            assert!(e < 1e-7, "case {case}: d{name} err {e:e}\n {a}\n {n}");
        }
    }
}

#[test]
fn gru_cell_backward_is_one_step_of_gru_backward() {
    let mut rng = NumpyRng::new(7);
    let (x, c0, p) = draws(&mut rng, (3, 5), (4, 1));
    let dc = rng.randn((5, 4, 1));
    let (_, _, caches) = gru_forward(x.view(), c0.view(), &p).unwrap();
    let seq = gru_backward(dc.view(), &caches).unwrap();
    let cell = gru_cell_backward(dc.index_axis(Axis(2), 0), &caches.caches[0]).unwrap();
    assert_close("dxt", &cell.dxt, &seq.dx.index_axis(Axis(2), 0), 1e-12);
    assert_close("dc_prev", &cell.dc_prev, &seq.dc0, 1e-12);
    assert_eq!(cell.w, seq.w);
}

#[test]
fn gru_bad_shapes_name_the_argument() {
    let mut rng = NumpyRng::new(9);
    let (x, c_prev, p) = draws(&mut rng, (3, 5), (4, 1));
    let xt = step(&x);
    let forward = |p: GruParameters<f64>| gru_cell_forward(xt.view(), c_prev.view(), &p);
    let wu = rng.randn((5, 7));
    expect_err(
        forward(GruParameters { wu, ..p.clone() }),
        r#"parameters["Wu"]"#,
    );
    let bc = rng.randn((4, 1));
    expect_err(
        forward(GruParameters { bc, ..p.clone() }),
        r#"parameters["bc"]"#,
    );
    let wy = rng.randn((2, 4));
    expect_err(
        forward(GruParameters { wy, ..p.clone() }),
        r#"parameters["Wy"]"#,
    );
    expect_err(
        gru_cell_forward(rng.randn((2, 4)).view(), c_prev.view(), &p),
        "xt",
    );
    expect_err(
        gru_cell_forward(xt.view(), rng.randn((5, 3)).view(), &p),
        "c_prev",
    );
    let x = rng.randn((3, 4, 2));
    expect_err(gru_forward(x.view(), rng.randn((4, 4)).view(), &p), "c0");
    let (_, _, caches) = gru_forward(x.view(), c_prev.view(), &p).unwrap();
    expect_err(gru_backward(rng.randn((5, 4, 3)).view(), &caches), "dc");
    expect_err(
        gru_cell_backward(rng.randn((5, 2)).view(), &caches.caches[0]),
        "dc_next",
    );
    let empty = GruCaches {
        caches: vec![],
        x: Array3::zeros((3, 4, 0)),
    };
    expect_err(gru_backward(rng.randn((5, 4, 1)).view(), &empty), "caches");
}
