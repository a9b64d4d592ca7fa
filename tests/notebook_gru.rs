//! The lecture's GRU in the notebook's layout (`notebook::gru_*`): a step against the
//! lecture's equations written out by hand, the sequence against its steps, backward
//! against f64 central differences of every input and parameter, and bad shapes.

mod common;

use common::{assert_close, expect_err, NumpyRng};
use ndarray::{s, Array2, Array3, Axis};
use wgpu_rnn::notebook::*;

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
    let mut rng = NumpyRng::new(3);
    let xt = rng.randn((3, 10));
    let c_prev = rng.randn((5, 10));
    let p = gru_params(&mut rng, 5, 3, 2);
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
    let mut rng = NumpyRng::new(5);
    let x = rng.randn((3, 4, 6));
    let c0 = rng.randn((5, 4));
    let p = gru_params(&mut rng, 5, 3, 2);
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

/// `L = Σ w ⊙ c` over the whole sequence, as a function of every input and parameter.
fn loss(x: &Array3<f64>, c0: &Array2<f64>, p: &GruParameters<f64>, w: &Array3<f64>) -> f64 {
    let (c, _, _) = gru_forward(x.view(), c0.view(), p).unwrap();
    (&c * w).sum()
}

/// Central differences of `loss` with respect to every element of one array.
fn numeric(mut f: impl FnMut(f64, usize) -> f64, len: usize) -> Vec<f64> {
    let eps = 1e-5;
    (0..len)
        .map(|k| (f(eps, k) - f(-eps, k)) / (2.0 * eps))
        .collect()
}

#[test]
fn gru_backward_matches_finite_differences() {
    // (n_x, n_a, m, T): T = 1 and n_a = 1 included.
    for (case, &(n_x, n_a, m, t)) in [(1, 1, 1, 1), (3, 4, 2, 3), (2, 1, 3, 4), (2, 3, 1, 1)]
        .iter()
        .enumerate()
    {
        let mut rng = NumpyRng::new(10 + case as u32);
        let x = rng.randn((n_x, m, t));
        let c0 = rng.randn((n_a, m));
        let p = gru_params(&mut rng, n_a, n_x, 2);
        let w = rng.randn((n_a, m, t));
        let (_, _, caches) = gru_forward(x.view(), c0.view(), &p).unwrap();
        let g = gru_backward(w.view(), &caches).unwrap();
        let check = |name: &str, analytic: Vec<f64>, numeric: Vec<f64>| {
            let a = ndarray::Array1::from(analytic);
            let n = ndarray::Array1::from(numeric);
            // Relative to the gradient, or to the loss's own scale where the gradient is
            // far below it (central differences carry the loss's rounding / eps).
            let scale = n.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let e = (&a - &n).iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale;
            assert!(e < 1e-7, "case {case}: d{name} err {e:e}\n {a}\n {n}");
        };
        let flat = |a: &Array2<f64>| a.iter().copied().collect::<Vec<_>>();
        check(
            "x",
            g.dx.iter().copied().collect(),
            numeric(
                |e, k| {
                    let mut x2 = x.clone();
                    x2.as_slice_mut().unwrap()[k] += e;
                    loss(&x2, &c0, &p, &w)
                },
                x.len(),
            ),
        );
        check(
            "c0",
            flat(&g.dc0),
            numeric(
                |e, k| {
                    let mut c2 = c0.clone();
                    c2.as_slice_mut().unwrap()[k] += e;
                    loss(&x, &c2, &p, &w)
                },
                c0.len(),
            ),
        );
        type Pick = fn(&mut GruParameters<f64>) -> &mut Array2<f64>;
        let params: [(&str, Pick, &Array2<f64>); 6] = [
            ("Wu", |p| &mut p.wu, &g.w.dwu),
            ("bu", |p| &mut p.bu, &g.w.dbu),
            ("Wr", |p| &mut p.wr, &g.w.dwr),
            ("br", |p| &mut p.br, &g.w.dbr),
            ("Wc", |p| &mut p.wc, &g.w.dwc),
            ("bc", |p| &mut p.bc, &g.w.dbc),
        ];
        for (name, pick, analytic) in params {
            let len = pick(&mut p.clone()).len();
            check(
                name,
                flat(analytic),
                numeric(
                    |e, k| {
                        let mut p2 = p.clone();
                        pick(&mut p2).as_slice_mut().unwrap()[k] += e;
                        loss(&x, &c0, &p2, &w)
                    },
                    len,
                ),
            );
        }
    }
}

#[test]
fn gru_cell_backward_is_one_step_of_gru_backward() {
    let mut rng = NumpyRng::new(7);
    let x = rng.randn((3, 4, 1));
    let c0 = rng.randn((5, 4));
    let p = gru_params(&mut rng, 5, 3, 2);
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
    let xt = rng.randn((3, 4));
    let c_prev = rng.randn((5, 4));
    let p = gru_params(&mut rng, 5, 3, 2);
    let mut bad = p.clone();
    bad.wu = rng.randn((5, 7));
    expect_err(
        gru_cell_forward(xt.view(), c_prev.view(), &bad),
        r#"parameters["Wu"]"#,
    );
    let mut bad = p.clone();
    bad.bc = rng.randn((4, 1));
    expect_err(
        gru_cell_forward(xt.view(), c_prev.view(), &bad),
        r#"parameters["bc"]"#,
    );
    let mut bad = p.clone();
    bad.wy = rng.randn((2, 4));
    expect_err(
        gru_cell_forward(xt.view(), c_prev.view(), &bad),
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
