//! The CPU reference path on its own: f64 central differences for every gradient, f32
//! against f64, saturating inputs, and bad input.

mod common;

use common::recipes::{lstm_packed, lstm_params, rnn_params};
use common::{assert_close, assert_grads_close, Case, NumpyRng};
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use wgpu_rnn::{cpu, Cell, Error, Head, Params};

/// A problem of weights of the usual scale (std 1/√(I+H): a contracting, non-chaotic
/// recurrence), biases of std 0.5 and normal inputs, h0 included; upstream gradients as
/// in every [`Case`].
fn problem(cell: Cell, t: usize, b: usize, i: usize, h: usize, seed: u32) -> Case {
    let mut rng = NumpyRng::new(seed);
    let g = cell.gates() * h;
    let k = 1.0 / ((i + h) as f64).sqrt();
    let p = Params::new(
        cell,
        rng.randn((g, i)) * k,
        rng.randn((g, h)) * k,
        rng.randn(g) * 0.5,
        rng.randn(g) * 0.5,
    )
    .unwrap();
    Case::inputs(p, &mut rng, b, t, |rng, bh| rng.randn(bh))
}

/// `L = Σ <dh, h> + <dc, c_T>`.
fn loss(pr: &Case) -> f64 {
    let tr = pr.cpu_forward();
    let mut l = (&tr.h * &pr.dh).sum();
    if let (Some(c), Some(dc)) = (tr.c_last(), &pr.dc) {
        l += (&c * dc).sum();
    }
    l
}

/// The array named `name`, as a mutable slice.
fn array<'a>(pr: &'a mut Case, name: &str) -> &'a mut [f64] {
    match name {
        "w_ih" => pr.p.w_ih.as_slice_mut(),
        "w_hh" => pr.p.w_hh.as_slice_mut(),
        "b_ih" => pr.p.b_ih.as_slice_mut(),
        "b_hh" => pr.p.b_hh.as_slice_mut(),
        "x" => pr.x.as_slice_mut(),
        "h0" => pr.h0.as_slice_mut(),
        "c0" => pr.c0.as_mut().unwrap().as_slice_mut(),
        _ => unreachable!(),
    }
    .unwrap()
}

/// Central differences of the loss with respect to every element of `name`.
fn numeric(pr: &Case, name: &str) -> Vec<f64> {
    let eps = 1e-6;
    let mut work = pr.clone();
    let n = array(&mut work, name).len();
    (0..n)
        .map(|k| {
            let v = array(&mut work, name)[k];
            array(&mut work, name)[k] = v + eps;
            let lp = loss(&work);
            array(&mut work, name)[k] = v - eps;
            let lm = loss(&work);
            array(&mut work, name)[k] = v;
            (lp - lm) / (2.0 * eps)
        })
        .collect()
}

fn check_gradients(cell: Cell, t: usize, b: usize, i: usize, h: usize, seed: u32) {
    let pr = problem(cell, t, b, i, h, seed);
    let (_, g) = pr.cpu_grads();
    let mut arrays: Vec<(&str, Vec<f64>)> = vec![
        ("w_ih", g.dw_ih.iter().copied().collect()),
        ("w_hh", g.dw_hh.iter().copied().collect()),
        ("b_ih", g.db_ih.to_vec()),
        ("b_hh", g.db_hh.to_vec()),
        ("x", g.dx.iter().copied().collect()),
        ("h0", g.dh0.iter().copied().collect()),
    ];
    if cell.has_cell_state() {
        arrays.push(("c0", g.dc0.as_ref().unwrap().iter().copied().collect()));
    }
    for (name, analytic) in arrays {
        let numeric = numeric(&pr, name);
        let a = ndarray::Array1::from(analytic);
        let n = ndarray::Array1::from(numeric);
        let e = common::rel_err(&a, &n);
        assert!(
            e < 1e-7,
            "{cell:?} T={t} B={b} I={i} H={h}: d{name} rel err {e:e}\n analytic {a}\n numeric {n}"
        );
    }
}

/// Every cell's backward against f64 central differences of every input and parameter
/// (T = 1 and H = 1 included; nonzero h0, c0 and final-cell gradient).
#[test]
fn gradients_match_finite_differences() {
    for (c, cell) in Cell::ALL.into_iter().enumerate() {
        for (k, &(t, b, i, h)) in [
            (1, 1, 1, 1),
            (1, 2, 3, 4),
            (3, 2, 3, 1),
            (4, 3, 2, 5),
            (6, 1, 4, 3),
        ]
        .iter()
        .enumerate()
        {
            check_gradients(cell, t, b, i, h, 10 * (c as u32 + 1) + k as u32);
        }
    }
}

/// One GRU step written out element by element, against the engine, for both values of
/// `reset_after`: PyTorch's `nn.GRU` documentation (gate order r, z, n, `b_hn` inside
/// `r ⊙ (…)`) and the lecture's candidate `tanh(W_c [Γ_r ⊙ c; x] + b_c)` (the reset
/// applied to the state before the product; both biases plain sums).
#[test]
fn gru_step_matches_hand_derived_equations() {
    let (b, i, h) = (3, 4, 5);
    for reset_after in [true, false] {
        let pr = problem(Cell::Gru { reset_after }, 1, b, i, h, 77);
        let p = &pr.p;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let tr = pr.cpu_forward();
        for r in 0..b {
            let x = pr.x.slice(ndarray::s![0, r, ..]);
            let hp = pr.h0.row(r);
            // Gate `gate` of unit `j`: W_ih x + b_ih and W_hh v + b_hh.
            let wx = |gate: usize, j: usize| -> f64 {
                p.b_ih[gate * h + j] + p.w_ih.row(gate * h + j).dot(&x)
            };
            let wh = |gate: usize, j: usize, v: &[f64]| {
                p.b_hh[gate * h + j]
                    + (0..h)
                        .map(|k| p.w_hh[[gate * h + j, k]] * v[k])
                        .sum::<f64>()
            };
            let hv: Vec<f64> = hp.to_vec();
            let rg: Vec<f64> = (0..h).map(|j| sig(wx(0, j) + wh(0, j, &hv))).collect();
            let gated: Vec<f64> = (0..h).map(|k| rg[k] * hv[k]).collect();
            for j in 0..h {
                let zg = sig(wx(1, j) + wh(1, j, &hv));
                let ng = match reset_after {
                    true => (wx(2, j) + rg[j] * wh(2, j, &hv)).tanh(),
                    false => (wx(2, j) + wh(2, j, &gated)).tanh(),
                };
                let want = (1.0 - zg) * ng + zg * hv[j];
                let got = tr.h[[0, r, j]];
                assert!(
                    (got - want).abs() < 1e-12,
                    "reset_after {reset_after}: h[{r}][{j}]: {got} vs {want}"
                );
            }
        }
    }
}

/// One step's forward and backward (`step_forward`, `step_backward`) against the
/// sequence functions on T = 1, every gradient to 1e-12.
#[test]
fn step_functions_agree_with_sequence() {
    for cell in Cell::ALL {
        let pr = problem(cell, 1, 3, 4, 5, 7);
        let x_t = pr.x.index_axis(Axis(0), 0);
        let c0 = pr.c0.as_ref().map(|c| c.view());
        let out = cpu::step_forward(&pr.p, x_t, pr.h0.view(), c0).unwrap();
        let dh = pr.dh.index_axis(Axis(0), 0);
        let dc = pr.dc.as_ref().map(|c| c.view());
        let g = cpu::step_backward(&pr.p, x_t, pr.h0.view(), c0, &out, dh, dc).unwrap();
        let step = cpu::Grads {
            dx: g.dx.insert_axis(Axis(0)),
            dh0: g.dh_prev,
            dc0: g.dc_prev,
            dw_ih: g.dw_ih,
            dw_hh: g.dw_hh,
            db_ih: g.db,
            db_hh: g.db_hh,
        };
        assert_grads_close(&format!("{cell:?} step"), &step, &pr.cpu_grads().1, 1e-12);
    }
}

/// The f32 CPU path against the f64 one: states and every gradient to 2e-4.
#[test]
fn f32_matches_f64() {
    for cell in Cell::ALL {
        for (k, &(t, b, i, h)) in [(1, 1, 1, 1), (5, 3, 17, 33), (9, 4, 33, 17), (20, 2, 8, 65)]
            .iter()
            .enumerate()
        {
            let pr = problem(cell, t, b, i, h, 40 + k as u32);
            let (tr32, g32) = pr.cast::<f32>().cpu_grads();
            let (tr64, g64) = pr.cpu_grads();
            let tol = 2e-4;
            assert_close("h", &tr32.h, &tr64.h, tol);
            if cell.has_cell_state() {
                assert_close("c", tr32.c.as_ref().unwrap(), tr64.c.as_ref().unwrap(), tol);
            }
            let label = format!("{cell:?} T={t} B={b} I={i} H={h}");
            assert_grads_close(&label, &g32, &g64, tol);
        }
    }
}

/// ±30 inputs (every gate saturated) stay finite, bounded and f32-accurate; inputs 400
/// times larger stay finite in f64 and f32.
#[test]
fn saturating_inputs_stay_finite_and_correct() {
    for cell in Cell::ALL {
        let mut pr = problem(cell, 4, 3, 5, 6, 3);
        // ±30 inputs push every gate into saturation.
        pr.x.mapv_inplace(|v| if v >= 0.0 { 30.0 } else { -30.0 });
        pr.p.w_ih.mapv_inplace(|v| v * 4.0);
        let tr = pr.cpu_forward();
        // |h| ≤ 1 for the RNN and LSTM; the GRU's h mixes h_{t-1} and n ∈ [-1, 1].
        let bound = match cell {
            Cell::Gru { .. } => pr.h0.iter().fold(1.0f64, |m, v| m.max(v.abs())),
            _ => 1.0,
        };
        assert!(tr.h.iter().all(|v| v.is_finite() && v.abs() <= bound));
        let (_, g) = pr.cpu_grads();
        assert!(g
            .dx
            .iter()
            .chain(g.dw_ih.iter())
            .chain(g.dw_hh.iter())
            .all(|v| v.is_finite()));
        // f32 in saturation agrees with f64.
        let tr32 = pr.cast::<f32>().cpu_forward();
        assert_close("h (saturated)", &tr32.h, &tr.h, 2e-4);
        // Extreme pre-activations: 1e4 must not overflow sigmoid or tanh.
        let mut big = pr.clone();
        big.x.mapv_inplace(|v| v * 400.0);
        assert!(big.cpu_forward().h.iter().all(|v| v.is_finite()));
        assert!(big
            .cast::<f32>()
            .cpu_forward()
            .h
            .iter()
            .all(|v| v.is_finite()));
    }
}

#[test]
fn softmax_of_huge_logits_is_finite_and_exact() {
    // Logits of ±1000: one column far below another must not become NaN.
    let w_y = ndarray::array![[1000.0f32], [-1000.0], [999.0]];
    let head = Head::new(w_y, ndarray::array![0.0f32, 0.0, 0.0]).unwrap();
    let h = ndarray::array![[[1.0f32], [-1.0]]]; // T=1, B=2, H=1
    let y = cpu::head_forward(&head, h.view()).unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
    let e = (-1.0f64).exp();
    let want = ndarray::array![[[1.0 / (1.0 + e), 0.0, e / (1.0 + e)], [0.0, 1.0, 0.0]]];
    assert_close("y", &y.mapv(|v| v as f64), &want, 1e-6);
    for row in y.index_axis(Axis(0), 0).rows() {
        assert!((row.sum() - 1.0).abs() < 1e-6);
    }
}

/// Asserts a shape error naming `arg`.
fn expect_shape_err<T: std::fmt::Debug>(r: wgpu_rnn::Result<T>, arg: &str) {
    match r {
        Err(Error::Shape {
            arg: a,
            ref expected,
            ..
        }) if a == arg => {
            assert!(
                expected.contains(['[', '(']),
                "expected shape in message: {expected}"
            );
            let msg = r.unwrap_err().to_string();
            assert!(msg.contains(arg), "{msg}");
        }
        Err(Error::Invalid { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming `{arg}`, got {other:?}"),
    }
}

#[test]
fn bad_input_returns_errors_naming_the_argument() {
    let p = Params::<f32>::init(Cell::Lstm, 3, 4, 1).unwrap();
    let x = Array3::<f32>::zeros((2, 5, 3));
    let h0 = Array2::<f32>::zeros((5, 4));
    // Params constructors.
    let zeros =
        |cell: Cell, w_ih: (usize, usize), w_hh: (usize, usize), b_ih: usize, b_hh: usize| {
            Params::new(
                cell,
                Array2::<f32>::zeros(w_ih),
                Array2::zeros(w_hh),
                Array1::zeros(b_ih),
                Array1::zeros(b_hh),
            )
        };
    expect_shape_err(zeros(Cell::Lstm, (16, 3), (15, 4), 16, 16), "w_hh");
    expect_shape_err(zeros(Cell::Lstm, (12, 3), (16, 4), 16, 16), "w_ih");
    expect_shape_err(zeros(Cell::Rnn, (4, 3), (4, 4), 3, 4), "b_ih");
    expect_shape_err(zeros(Cell::Rnn, (4, 3), (4, 4), 4, 5), "b_hh");
    expect_shape_err(
        Params::<f32>::rnn_from_notebook(
            Array2::zeros((4, 3)).view(),
            Array2::zeros((4, 4)).view(),
            Array2::zeros((3, 1)).view(),
        ),
        "ba",
    );
    // The notebook's LSTM weights, Wc and bo as given and the rest right.
    let w = Array2::<f32>::zeros((4, 7));
    let b = Array2::<f32>::zeros((4, 1));
    let lstm = |wc: ArrayView2<f32>, bo: ArrayView2<f32>| {
        let (w, b) = (w.view(), b.view());
        Params::lstm_from_notebook(w, b, w, b, wc, b, w, bo)
    };
    expect_shape_err(lstm(Array2::zeros((4, 6)).view(), b.view()), "Wc");
    expect_shape_err(lstm(w.view(), b.t()), "bo");
    expect_shape_err(
        Head::new(Array2::<f32>::zeros((2, 4)), ndarray::Array1::zeros(3)),
        "b_y",
    );
    // Edited fields are checked again.
    let mut edited = p.clone();
    edited.b_hh = ndarray::Array1::zeros(3);
    expect_shape_err(cpu::forward(&edited, x.view(), None, None), "b_hh");
    // forward.
    expect_shape_err(
        cpu::forward(&p, Array3::zeros((2, 5, 4)).view(), None, None),
        "x",
    );
    expect_shape_err(
        cpu::forward(&p, Array3::zeros((0, 5, 3)).view(), None, None),
        "x",
    );
    expect_shape_err(
        cpu::forward(&p, x.view(), Some(Array2::zeros((5, 3)).view()), None),
        "h0",
    );
    expect_shape_err(
        cpu::forward(&p, x.view(), None, Some(Array2::zeros((4, 4)).view())),
        "c0",
    );
    let rnn = Params::<f32>::init(Cell::Rnn, 3, 4, 1).unwrap();
    expect_shape_err(cpu::forward(&rnn, x.view(), None, Some(h0.view())), "c0");
    // backward.
    let tr = cpu::forward(&p, x.view(), None, None).unwrap();
    expect_shape_err(
        cpu::backward(&p, &tr, Array3::zeros((2, 5, 5)).view(), None),
        "dh",
    );
    expect_shape_err(
        cpu::backward(
            &p,
            &tr,
            Array3::zeros((2, 5, 4)).view(),
            Some(Array2::zeros((5, 5)).view()),
        ),
        "dc_last",
    );
    expect_shape_err(
        cpu::backward(&rnn, &tr, Array3::zeros((2, 5, 4)).view(), None),
        "trace",
    );
    let mut broken = tr.clone();
    broken.gates = None;
    expect_shape_err(
        cpu::backward(&p, &broken, Array3::zeros((2, 5, 4)).view(), None),
        "trace",
    );
    // steps.
    expect_shape_err(
        cpu::step_forward(&p, Array2::zeros((5, 2)).view(), h0.view(), Some(h0.view())),
        "x_t",
    );
    expect_shape_err(
        cpu::step_forward(
            &p,
            Array2::zeros((5, 3)).view(),
            Array2::zeros((5, 1)).view(),
            Some(h0.view()),
        ),
        "h_prev",
    );
    expect_shape_err(
        cpu::step_forward(&p, Array2::zeros((5, 3)).view(), h0.view(), None),
        "c_prev",
    );
    // step backward.
    let x_t = Array2::<f32>::zeros((5, 3));
    let out = cpu::step_forward(&p, x_t.view(), h0.view(), Some(h0.view())).unwrap();
    let step_back = |x_t: Array2<f32>, dh: Array2<f32>, dc: Option<Array2<f32>>| {
        cpu::step_backward(
            &p,
            x_t.view(),
            h0.view(),
            Some(h0.view()),
            &out,
            dh.view(),
            dc.as_ref().map(|d| d.view()),
        )
    };
    expect_shape_err(step_back(x_t.clone(), Array2::zeros((5, 3)), None), "dh");
    expect_shape_err(
        step_back(x_t.clone(), h0.clone(), Some(Array2::zeros((4, 4)))),
        "dc",
    );
    expect_shape_err(step_back(Array2::zeros((5, 2)), h0.clone(), None), "x_t");
    // An empty trace (T = 0) made by hand has no last state, and backward refuses it.
    let empty = cpu::Trace {
        cell: Cell::Lstm,
        x: Array3::zeros((0, 5, 3)),
        h0: h0.clone(),
        c0: Some(h0.clone()),
        h: Array3::zeros((0, 5, 4)),
        c: Some(Array3::zeros((0, 5, 4))),
        gates: Some(Array3::zeros((0, 5, 16))),
    };
    assert!(empty.h_last().is_none() && empty.c_last().is_none());
    expect_shape_err(
        cpu::backward(&p, &empty, Array3::zeros((0, 5, 4)).view(), None),
        "trace.h",
    );
    // head.
    let head = Head::new(Array2::<f32>::zeros((2, 4)), ndarray::Array1::zeros(2)).unwrap();
    expect_shape_err(
        cpu::head_forward(&head, Array3::zeros((2, 5, 3)).view()),
        "h",
    );
}

#[test]
fn notebook_functions_reject_bad_shapes() {
    use wgpu_rnn::notebook::*;
    let p = rnn_params(false, Array2::zeros);
    let cell_forward = |xt: (usize, usize), a_prev: (usize, usize), p: &RnnParameters<f64>| {
        rnn_cell_forward(Array2::zeros(xt).view(), Array2::zeros(a_prev).view(), p)
    };
    expect_shape_err(cell_forward((4, 10), (5, 10), &p), "xt");
    expect_shape_err(cell_forward((3, 10), (5, 9), &p), "a_prev");
    expect_shape_err(
        rnn_forward(
            Array3::zeros((3, 10, 4)).view(),
            Array2::zeros((4, 10)).view(),
            &p,
        ),
        "a0",
    );
    let mut bad = p.clone();
    bad.wya = Array2::zeros((2, 4));
    expect_shape_err(cell_forward((3, 10), (5, 10), &bad), r#"parameters["Wya"]"#);
    let (_, _, caches) = rnn_forward(
        Array3::zeros((3, 10, 4)).view(),
        Array2::zeros((5, 10)).view(),
        &p,
    )
    .unwrap();
    expect_shape_err(
        rnn_backward(Array3::zeros((5, 10, 5)).view(), &caches),
        "da",
    );
    expect_shape_err(
        rnn_cell_backward(Array2::zeros((5, 9)).view(), &caches.caches[0]),
        "da_next",
    );
    let mut short = caches.clone();
    short.x = Array3::zeros((3, 10, 2));
    expect_shape_err(
        rnn_backward(Array3::zeros((5, 10, 4)).view(), &short),
        "caches",
    );
    let lp = lstm_params(true, Array2::zeros);
    let z = Array2::<f64>::zeros((5, 10));
    expect_shape_err(
        lstm_cell_forward(
            Array2::zeros((3, 10)).view(),
            z.view(),
            Array2::zeros((5, 1)).view(),
            &lp,
        ),
        "c_prev",
    );
    let (_, _, _, caches) = lstm_forward(Array3::zeros((3, 10, 7)).view(), z.view(), &lp).unwrap();
    expect_shape_err(
        lstm_backward(Array3::zeros((5, 10, 8)).view(), &caches),
        "da",
    );
    expect_shape_err(
        lstm_cell_backward(z.view(), Array2::zeros((4, 10)).view(), &caches.caches[0]),
        "dc_next",
    );
    // Caches edited into inconsistency are errors too, not panics.
    let mut broken = caches.caches[0].clone();
    broken.ft = Array2::zeros((4, 10));
    expect_shape_err(lstm_cell_backward(z.view(), z.view(), &broken), "cache");
    let da = Array3::<f64>::zeros((5, 10, 3));
    let edits: [fn(&mut LstmCaches<f64>); 4] = [
        |c| c.caches[1].ot = Array2::zeros((5, 9)),
        |c| c.caches[2].a_next = Array2::zeros((5, 9)),
        |c| c.x = Array3::zeros((3, 10, 1)),
        |c| c.x = Array3::zeros((4, 10, 7)),
    ];
    for edit in edits {
        let mut edited = caches.clone();
        edit(&mut edited);
        expect_shape_err(lstm_backward(da.view(), &edited), "caches");
    }
}

/// The notebook's LSTM from a nonzero `c0`, and backward with a gradient on the last cell
/// state, against the library's CPU path on the packed parameters.
#[test]
fn notebook_lstm_with_c0_and_final_cell_gradient() {
    use wgpu_rnn::notebook::{lstm_backward_dc, lstm_forward_c0};
    let mut rng = NumpyRng::new(4);
    let params = lstm_params(true, |shape| rng.randn(shape));
    let packed = lstm_packed(&params);
    let (n_x, m, t, n_a) = (3, 10, 7, 5);
    let x = rng.randn((n_x, m, t));
    let a0 = rng.randn((n_a, m));
    let c0 = rng.randn((n_a, m));
    let da = rng.randn((n_a, m, t));
    let dc = rng.randn((n_a, m));
    let (a, _, c, caches) = lstm_forward_c0(x.view(), a0.view(), c0.view(), &params).unwrap();
    let g = lstm_backward_dc(da.view(), dc.view(), &caches).unwrap();
    let tm = |v: &ndarray::Array3<f64>| v.view().permuted_axes([2, 1, 0]).to_owned();
    let tr = cpu::forward(&packed, tm(&x).view(), Some(a0.t()), Some(c0.t())).unwrap();
    let want = cpu::backward(&packed, &tr, tm(&da).view(), Some(dc.t())).unwrap();
    assert_close("a", &tm(&a), &tr.h, 1e-12);
    assert_close("c", &tm(&c), tr.c.as_ref().unwrap(), 1e-12);
    assert_close("dx", &tm(&g.dx), &want.dx, 1e-12);
    assert_close("da0", &g.da0.t(), &want.dh0, 1e-12);
    assert_close("dc0", &g.dc0.t(), want.dc0.as_ref().unwrap(), 1e-12);
    // The cached c_prev of step 0 is c0, not zeros.
    assert_close("cache c_prev", &caches.caches[0].c_prev, &c0, 0.0);
    // Without c0 and dc, the published numbers' path: c0 = 0, dc = 0.
    let (_, _, _, zc) = wgpu_rnn::notebook::lstm_forward(x.view(), a0.view(), &params).unwrap();
    assert!(zc.caches[0].c_prev.iter().all(|&v| v == 0.0));
}

/// A trace with cell states for a cell that has none is refused, not sliced (it used to
/// panic on a short `c`).
#[test]
fn cell_states_in_a_trace_of_a_cell_without_them_are_errors() {
    for cell in Cell::ALL.into_iter().filter(|c| !c.has_cell_state()) {
        let pr = problem(cell, 2, 3, 2, 2, 5);
        let mut tr = cpu::forward(&pr.p, pr.x.view(), None, None).unwrap();
        tr.c = Some(Array3::zeros((1, 1, 1)));
        tr.c0 = Some(Array2::zeros((1, 1)));
        let r = cpu::backward(&pr.p, &tr, pr.dh.view(), None);
        assert!(
            matches!(r, Err(Error::Invalid { arg: "trace", .. })),
            "{cell:?}: {r:?}"
        );
    }
}

/// The batch rows run in parts on threads (forward and backward): a batch of 13 gives
/// each row's own single-row run, bit for bit in the states and the input and state
/// gradients (row-wise computations), and the same weight gradients up to summation
/// order; every cell, f32 and f64.
#[test]
fn batch_parts_on_threads_equal_single_rows() {
    use ndarray::{s, Array3, Axis};
    use wgpu_rnn::{cpu, Params, SplitMix64};
    for cell in wgpu_rnn::Cell::ALL {
        let (t, b, i, h) = (6, 13, 5, 9);
        let p = Params::<f32>::init(cell, i, h, 3).unwrap();
        let mut rng = SplitMix64(4);
        let x = Array3::from_shape_simple_fn((t, b, i), || rng.next_f64() as f32 - 0.5);
        let dh = Array3::from_shape_simple_fn((t, b, h), || rng.next_f64() as f32 - 0.5);
        let all = cpu::forward(&p, x.view(), None, None).unwrap();
        let g = cpu::backward(&p, &all, dh.view(), None).unwrap();
        let mut dw = g.dw_hh.clone();
        dw.fill(0.0);
        for r in 0..b {
            let xr = x.slice(s![.., r..r + 1, ..]).to_owned();
            let one = cpu::forward(&p, xr.view(), None, None).unwrap();
            assert_eq!(
                one.h.index_axis(Axis(1), 0),
                all.h.index_axis(Axis(1), r),
                "{cell:?} row {r}: h"
            );
            let dr = dh.slice(s![.., r..r + 1, ..]).to_owned();
            let gr = cpu::backward(&p, &one, dr.view(), None).unwrap();
            assert_eq!(
                gr.dx.index_axis(Axis(1), 0),
                g.dx.index_axis(Axis(1), r),
                "{cell:?} dx"
            );
            assert_eq!(gr.dh0.row(0), g.dh0.row(r), "{cell:?} dh0");
            dw += &gr.dw_hh;
        }
        let err = (&dw - &g.dw_hh).iter().fold(0f32, |m, d| m.max(d.abs()));
        assert!(err < 1e-5, "{cell:?} dW_hh: {err}");
    }
}

/// The inference forward gives the training forward's hidden states and last cell state
/// bit for bit, every cell, f32 and f64, with and without initial states, batches cut
/// into parts or not, T = 1, and an input in a non-standard layout.
#[test]
fn inference_forward_equals_the_trace() {
    use ndarray::{Array2, Array3, Axis};
    use wgpu_rnn::{cpu, Params, SplitMix64};
    fn check<A: wgpu_rnn::Real + std::fmt::Debug>(
        cell: wgpu_rnn::Cell,
        shape: (usize, usize, usize, usize),
    ) {
        let (t, b, i, h) = shape;
        let p = Params::<A>::init(cell, i, h, 3).unwrap();
        let mut rng = SplitMix64(7);
        let mut draw =
            |n: usize| -> Vec<A> { (0..n).map(|_| A::from_f64(rng.next_f64() - 0.5)).collect() };
        // x stored [B, T, I] and viewed [T, B, I]: not standard layout.
        let x = Array3::from_shape_vec((b, t, i), draw(b * t * i)).unwrap();
        let x = x.view().permuted_axes([1, 0, 2]);
        let h0 = Array2::from_shape_vec((b, h), draw(b * h)).unwrap();
        let c0 = Array2::from_shape_vec((b, h), draw(b * h)).unwrap();
        let c0 = (cell == wgpu_rnn::Cell::Lstm).then_some(c0);
        for (h0, c0) in [
            (None, None),
            (Some(h0.view()), c0.as_ref().map(|c| c.view())),
        ] {
            let tr = cpu::forward(&p, x, h0, c0).unwrap();
            let out = cpu::forward_inference(&p, x, h0, c0).unwrap();
            let label = format!("{cell:?} {shape:?} h0 {}", h0.is_some());
            assert_eq!(out.h, tr.h, "{label}: h");
            assert_eq!(
                out.c_last.as_ref().map(|c| c.view()),
                tr.c_last(),
                "{label}: c_last"
            );
            assert_eq!(out.h.len_of(Axis(0)), t);
        }
    }
    for cell in wgpu_rnn::Cell::ALL {
        for shape in [(6, 13, 5, 9), (1, 1, 3, 4), (3, 40, 7, 17)] {
            check::<f32>(cell, shape);
            check::<f64>(cell, shape);
        }
    }
}
