//! GPU backward through time against the f64 CPU backward: the forward grid, T = 1,
//! H = 1, nonzero initial states and final-cell gradient, saturating inputs, a long
//! sequence, accumulation, the notebook's backward recipes, and bad input.

mod common;

use common::gpu::{ctx, gl_ctx};
use common::{
    assert_close, case, expect_err, f32a, lstm_packed, lstm_params, Case, NumpyRng, GRID,
};
use ndarray::Array2;
use wgpu_rnn::gpu::{Context, InputGrads, Layer, Mode, ParamGrads, Tensor};
use wgpu_rnn::{Cell, Params};

fn up<D: ndarray::Dimension>(ctx: &Context, a: &ndarray::Array<f64, D>) -> Tensor {
    Tensor::from_array(ctx, "t", &f32a(a)).unwrap()
}

/// Uploads the case, runs the GPU forward (training) and `backward_into` `grads`.
fn gpu_backward_into(
    ctx: &Context,
    layer: &Layer,
    c: &Case,
    grads: &mut ParamGrads,
    accumulate: bool,
) -> InputGrads {
    let out = layer
        .forward(
            &up(ctx, &c.x),
            Some(&up(ctx, &c.h0)),
            c.c0.as_ref().map(|v| up(ctx, v)).as_ref(),
            Mode::Training,
        )
        .unwrap();
    layer
        .backward_into(
            out.trace.as_ref().unwrap(),
            &up(ctx, &c.dh),
            c.dc.as_ref().map(|v| up(ctx, v)).as_ref(),
            grads,
            accumulate,
        )
        .unwrap()
}

fn check_backward(ctx: &Context, c: &Case, label: &str, tol: f64) {
    check_direction(ctx, c, label, tol, false);
}

/// The GPU forward (training) and backward of `c`, in time order or reversed
/// (`Layer::forward_reversed`), against the f64 CPU path; reversed, the CPU runs the
/// time-reversed input and upstream gradient, and its outputs are reversed back.
fn check_direction(ctx: &Context, c: &Case, label: &str, tol: f64, reverse: bool) {
    let flip = |a: &ndarray::Array3<f64>| {
        let mut v = a.view();
        if reverse {
            v.invert_axis(ndarray::Axis(0));
        }
        v.as_standard_layout().into_owned()
    };
    let cpu_case = Case {
        p: c.p.clone(),
        x: flip(&c.x),
        h0: c.h0.clone(),
        c0: c.c0.clone(),
        dh: flip(&c.dh),
        dc: c.dc.clone(),
    };
    let (tr, want) = cpu_case.cpu_grads();
    let layer = Layer::new(ctx, &c.p.cast::<f32>()).unwrap();
    let run = if reverse {
        Layer::forward_reversed
    } else {
        Layer::forward
    };
    let out = run(
        &layer,
        &up(ctx, &c.x),
        Some(&up(ctx, &c.h0)),
        c.c0.as_ref().map(|a| up(ctx, a)).as_ref(),
        Mode::Training,
    )
    .unwrap();
    let h = out.h.to_array().unwrap();
    assert_close(
        &format!("{label} h"),
        &h,
        &f32a(&flip(&tr.h)).into_dyn(),
        tol,
    );
    let last = tr.h_last().unwrap().mapv(|v| v as f32).into_dyn();
    assert_close(
        &format!("{label} h_last"),
        &out.h_last.to_array().unwrap(),
        &last,
        tol,
    );
    if let (Some(got), Some(want)) = (&out.c_last, tr.c_last()) {
        let want = want.mapv(|v| v as f32).into_dyn();
        assert_close(
            &format!("{label} c_last"),
            &got.to_array().unwrap(),
            &want,
            tol,
        );
    }
    let g = layer
        .backward(
            out.trace.as_ref().unwrap(),
            &up(ctx, &c.dh),
            c.dc.as_ref().map(|a| up(ctx, a)).as_ref(),
        )
        .unwrap()
        .to_cpu()
        .unwrap();
    let f = |a: &ndarray::ArrayD<f64>| a.mapv(|v| v as f32);
    let pairs = [
        ("dx", g.dx.into_dyn(), flip(&want.dx).into_dyn()),
        ("dh0", g.dh0.into_dyn(), want.dh0.into_dyn()),
        ("dw_ih", g.dw_ih.into_dyn(), want.dw_ih.into_dyn()),
        ("dw_hh", g.dw_hh.into_dyn(), want.dw_hh.into_dyn()),
        ("db_ih", g.db_ih.into_dyn(), want.db_ih.into_dyn()),
        ("db_hh", g.db_hh.into_dyn(), want.db_hh.into_dyn()),
    ];
    for (name, got, want) in &pairs {
        assert_close(&format!("{label} {name}"), got, &f(want), tol);
    }
    if let Some(dc0) = want.dc0 {
        assert_close(
            &format!("{label} dc0"),
            &g.dc0.unwrap().into_dyn(),
            &f(&dc0.into_dyn()),
            tol,
        );
    }
}

/// The step schedule: the same kernels run the sequence from its end
/// (`Layer::forward_reversed`, the reverse direction of a bidirectional layer), forward
/// and backward, on both backends, for every cell (T = 1 and odd sizes included).
#[test]
fn reversed_schedule_matches_cpu_on_time_reversed_input() {
    for (backend, ctx) in [("default", ctx()), ("GL", gl_ctx())] {
        let Some(ctx) = ctx else { continue };
        for (k, cell) in Cell::ALL.into_iter().enumerate() {
            for &(i, h, b, t) in &[(3, 17, 5, 4), (1, 1, 1, 1), (65, 33, 9, 3)] {
                check_direction(
                    ctx,
                    &case(cell, i, h, b, t, 900 + k as u32),
                    &format!("{backend} reversed {cell:?} I={i} H={h} B={b} T={t}"),
                    2e-4,
                    true,
                );
                // Inference (two ping-pong cell-state slots) and States give the same
                // states as training.
                let c = case(cell, i, h, b, t, 900 + k as u32);
                let layer = Layer::new(ctx, &c.p.cast::<f32>()).unwrap();
                let (x, h0) = (up(ctx, &c.x), up(ctx, &c.h0));
                let c0 = c.c0.as_ref().map(|a| up(ctx, a));
                let run = |mode| {
                    layer
                        .forward_reversed(&x, Some(&h0), c0.as_ref(), mode)
                        .unwrap()
                };
                let want = run(Mode::Training);
                for mode in [Mode::Inference, Mode::States] {
                    let got = run(mode);
                    let label = format!("{backend} reversed {cell:?} {mode:?} T={t}");
                    let pairs = [
                        (Some(&got.h), Some(&want.h)),
                        (Some(&got.h_last), Some(&want.h_last)),
                        (got.c_last.as_ref(), want.c_last.as_ref()),
                        (
                            got.c.as_ref().filter(|_| mode == Mode::States),
                            want.c.as_ref(),
                        ),
                    ];
                    for (g, w) in pairs.into_iter().filter_map(|(g, w)| Some((g?, w?))) {
                        assert_close(&label, &g.to_array().unwrap(), &w.to_array().unwrap(), 0.0);
                    }
                }
            }
        }
    }
}

/// Every cell's backward against the f64 CPU path over the whole grid (nonzero h0, c0
/// and final-cell gradient), outputs NaN-poisoned before the run.
#[test]
fn backward_matches_cpu_on_grid() {
    let Some(ctx) = ctx() else { return };
    for (c, cell) in Cell::ALL.into_iter().enumerate() {
        for (k, &(i, h, b, t)) in GRID.iter().enumerate() {
            check_backward(
                ctx,
                &case(cell, i, h, b, t, 500 + 100 * c as u32 + k as u32),
                &format!("{cell:?} I={i} H={h} B={b} T={t}"),
                2e-4,
            );
        }
    }
}

#[test]
fn gl_backend_backward_matches_cpu() {
    let Some(ctx) = gl_ctx() else { return };
    for (k, cell) in Cell::ALL.into_iter().enumerate() {
        for &(i, h, b, t) in &[(3, 17, 5, 3), (65, 33, 2, 2)] {
            check_backward(
                ctx,
                &case(cell, i, h, b, t, 700 + k as u32),
                &format!("GL {cell:?} I={i} H={h} B={b} T={t}"),
                2e-4,
            );
        }
    }
}

#[test]
fn saturating_inputs_backward() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        let mut c = case(cell, 9, 17, 5, 4, 7);
        c.x.mapv_inplace(|v| if v >= 0.0 { 30.0 } else { -30.0 });
        check_backward(ctx, &c, &format!("{cell:?} saturated"), 1e-3);
    }
}

#[test]
fn long_sequence_backward() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        check_backward(
            ctx,
            &case(cell, 8, 32, 3, 500, 11),
            &format!("{cell:?} T=500 H=32"),
            2e-4,
        );
    }
}

#[test]
fn accumulation_adds_up() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        let a = case(cell, 5, 9, 3, 4, 21);
        let mut b = case(cell, 5, 9, 3, 4, 22);
        b.p = a.p.clone();
        let layer = Layer::new(ctx, &a.p.cast::<f32>()).unwrap();
        let mut grads = layer.zero_grads().unwrap();
        let mut want = (
            Array2::<f64>::zeros(a.p.w_ih.dim()),
            Array2::<f64>::zeros(a.p.w_hh.dim()),
            ndarray::Array1::<f64>::zeros(a.p.b_ih.dim()),
            ndarray::Array1::<f64>::zeros(a.p.b_hh.dim()),
        );
        for c in [&a, &b] {
            gpu_backward_into(ctx, &layer, c, &mut grads, true);
            let (_, g) = c.cpu_grads();
            want.0 += &g.dw_ih;
            want.1 += &g.dw_hh;
            want.2 += &g.db_ih;
            want.3 += &g.db_hh;
        }
        let (dw_ih, dw_hh, db, db_hh) = grads.to_host().unwrap();
        assert_close("sum dw_ih", &dw_ih, &f32a(&want.0), 2e-4);
        assert_close("sum dw_hh", &dw_hh, &f32a(&want.1), 2e-4);
        assert_close("sum db", &db, &f32a(&want.2), 2e-4);
        assert_close("sum db_hh", &db_hh, &f32a(&want.3), 2e-4);
        // Without accumulate the buffers are overwritten.
        gpu_backward_into(ctx, &layer, &a, &mut grads, false);
        let (_, g) = a.cpu_grads();
        let (dw_ih, _, _, _) = grads.to_host().unwrap();
        assert_close("overwritten dw_ih", &dw_ih, &f32a(&g.dw_ih), 2e-4);
    }
}

/// The notebook's backward recipes 5-8 on the GPU (the notebook's layout converted).
#[test]
fn notebook_backward_recipes_on_gpu() {
    let Some(ctx) = ctx() else { return };
    let tol = |name: &str, got: f32, want: f64, scale: f64| {
        assert!(
            ((got as f64) - want).abs() <= 2e-4 * scale.max(1.0),
            "{name}: GPU {got} vs published {want}"
        );
    };
    // Recipe 6: rnn_backward (draws x, a0, Wax, Waa, Wya, ba, by, then da).
    {
        let mut rng = NumpyRng::new(1);
        let x = rng.randn((3, 10, 4));
        let a0 = rng.randn((5, 10));
        let wax = rng.randn((5, 3));
        let waa = rng.randn((5, 5));
        let _wya = rng.randn((2, 5));
        let ba = rng.randn((5, 1));
        let _by = rng.randn((2, 1));
        let da = rng.randn((5, 10, 4));
        let p = Params::rnn_from_notebook(wax.view(), waa.view(), ba.view()).unwrap();
        let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
        let out = layer
            .forward(
                &up(ctx, &x.permuted_axes([2, 1, 0]).to_owned()),
                Some(&up(ctx, &a0.t().to_owned())),
                None,
                Mode::Training,
            )
            .unwrap();
        let g = layer
            .backward(
                out.trace.as_ref().unwrap(),
                &up(ctx, &da.permuted_axes([2, 1, 0]).to_owned()),
                None,
            )
            .unwrap()
            .to_cpu()
            .unwrap();
        // dx [T, m, n_x]; the notebook's dx[1][2] is (n_x=1, m=2, all T).
        let want = [-2.07101689, -0.59255627, 0.02466855, 0.01483317];
        for (t, w) in want.iter().enumerate() {
            tol("dx[1][2]", g.dx[[t, 2, 1]], *w, 2.1);
        }
        tol("da0[2][3]", g.dh0[[3, 2]], -0.31494237512664996, 1.0);
        tol("dWax[3][1]", g.dw_ih[[3, 1]], 11.264104496527777, 11.3);
        tol("dWaa[1][2]", g.dw_hh[[1, 2]], 2.3033331265798935, 11.3);
        tol("dba[4]", g.db_ih[4], -0.74747722, 1.0);
    }
    // Recipe 8: lstm_backward, true BPTT over the first 4 of 7 steps.
    {
        let mut rng = NumpyRng::new(1);
        let x = rng.randn((3, 10, 7));
        let a0 = rng.randn((5, 10));
        let p = lstm_packed(&lstm_params(&mut rng, false));
        let da = rng.randn((5, 10, 4));
        let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
        let x4 = x
            .slice(ndarray::s![.., .., ..4])
            .permuted_axes([2, 1, 0])
            .to_owned();
        let out = layer
            .forward(
                &up(ctx, &x4),
                Some(&up(ctx, &a0.t().to_owned())),
                None,
                Mode::Training,
            )
            .unwrap();
        let g = layer
            .backward(
                out.trace.as_ref().unwrap(),
                &up(ctx, &da.permuted_axes([2, 1, 0]).to_owned()),
                None,
            )
            .unwrap()
            .to_cpu()
            .unwrap();
        let want = [0.00218254, 0.28205375, -0.48292508, -0.43281115];
        for (t, wv) in want.iter().enumerate() {
            tol("dx[1][2]", g.dx[[t, 2, 1]], *wv, 1.0);
        }
        tol("da0[2][3]", g.dh0[[3, 2]], 0.3127703102572602, 1.0);
        // Notebook dW (n_a, n_a + n_x) on [a; x]: column 1 and 2 are recurrent columns.
        let h = 5;
        tol("dWf[3][1]", g.dw_hh[[h + 3, 1]], -0.08098023109383466, 1.0);
        tol("dWi[1][2]", g.dw_hh[[1, 2]], 0.40512433092981814, 1.0);
        tol(
            "dWc[3][1]",
            g.dw_hh[[2 * h + 3, 1]],
            -0.07937467355121496,
            1.0,
        );
        tol(
            "dWo[1][2]",
            g.dw_hh[[3 * h + 1, 2]],
            0.03894877576298694,
            1.0,
        );
        tol("dbf[4]", g.db_ih[h + 4], -0.15745657, 1.0);
        tol("dbi[4]", g.db_ih[4], -0.50848333, 1.0);
        tol("dbc[4]", g.db_ih[2 * h + 4], -0.42510818, 1.0);
        tol("dbo[4]", g.db_ih[3 * h + 4], -0.17958196, 1.0);
    }
    // Recipes 5 and 7: one-step backward with an upstream gradient (and dc for the LSTM).
    {
        let ba = {
            let mut r = NumpyRng::new(1);
            let _ = r.randn((3, 10, 4));
            let _ = r.randn((5, 10));
            let _ = r.randn((5, 5));
            let _ = r.randn((5, 3));
            let _ = r.randn((2, 5));
            r.randn((5, 1))
        };
        let mut rng = NumpyRng::new(1);
        let xt = rng.randn((3, 10));
        let a_prev = rng.randn((5, 10));
        let wax = rng.randn((5, 3));
        let waa = rng.randn((5, 5));
        let _ = rng.randn((2, 5));
        let _ = rng.randn((5, 1));
        let _ = rng.randn((2, 1));
        let da_next = rng.randn((5, 10));
        let p = Params::rnn_from_notebook(wax.view(), waa.view(), ba.view()).unwrap();
        let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
        let x = xt.t().to_owned().insert_axis(ndarray::Axis(0));
        let out = layer
            .forward(
                &up(ctx, &x),
                Some(&up(ctx, &a_prev.t().to_owned())),
                None,
                Mode::Training,
            )
            .unwrap();
        let dh = da_next.t().to_owned().insert_axis(ndarray::Axis(0));
        let g = layer
            .backward(out.trace.as_ref().unwrap(), &up(ctx, &dh), None)
            .unwrap()
            .to_cpu()
            .unwrap();
        tol("dxt[1][2]", g.dx[[0, 2, 1]], -0.4605641030588796, 1.0);
        tol("da_prev[2][3]", g.dh0[[3, 2]], 0.08429686538067718, 1.0);
        tol("dWax[3][1]", g.dw_ih[[3, 1]], 0.3930818739219304, 1.0);
        tol("dWaa[1][2]", g.dw_hh[[1, 2]], -0.2848395578696067, 1.0);
        tol("dba[4]", g.db_ih[4], 0.80517166, 1.0);
    }
    {
        let mut rng = NumpyRng::new(1);
        let xt = rng.randn((3, 10));
        let a_prev = rng.randn((5, 10));
        let c_prev = rng.randn((5, 10));
        let p = lstm_packed(&lstm_params(&mut rng, true)); // Wy, by drawn, unused
        let da_next = rng.randn((5, 10));
        let dc_next = rng.randn((5, 10));
        let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
        let x = xt.t().to_owned().insert_axis(ndarray::Axis(0));
        let out = layer
            .forward(
                &up(ctx, &x),
                Some(&up(ctx, &a_prev.t().to_owned())),
                Some(&up(ctx, &c_prev.t().to_owned())),
                Mode::Training,
            )
            .unwrap();
        let dh = da_next.t().to_owned().insert_axis(ndarray::Axis(0));
        let g = layer
            .backward(
                out.trace.as_ref().unwrap(),
                &up(ctx, &dh),
                Some(&up(ctx, &dc_next.t().to_owned())),
            )
            .unwrap()
            .to_cpu()
            .unwrap();
        let h = 5;
        tol("dxt[1][2]", g.dx[[0, 2, 1]], 3.230559115109188, 3.3);
        tol("da_prev[2][3]", g.dh0[[3, 2]], -0.06396214197109236, 1.0);
        tol(
            "dc_prev[2][3]",
            g.dc0.as_ref().unwrap()[[3, 2]],
            0.7975220387970015,
            1.0,
        );
        tol("dWf[3][1]", g.dw_hh[[h + 3, 1]], -0.1479548381644968, 2.4);
        tol("dWi[1][2]", g.dw_hh[[1, 2]], 1.0574980552259903, 2.4);
        tol(
            "dWc[3][1]",
            g.dw_hh[[2 * h + 3, 1]],
            2.3045621636876668,
            2.4,
        );
        tol(
            "dWo[1][2]",
            g.dw_hh[[3 * h + 1, 2]],
            0.3313115952892109,
            2.4,
        );
        tol("dbf[4]", g.db_ih[h + 4], 0.18864637, 1.0);
        tol("dbi[4]", g.db_ih[4], -0.40142491, 1.0);
        tol("dbc[4]", g.db_ih[2 * h + 4], 0.25587763, 1.0);
        tol("dbo[4]", g.db_ih[3 * h + 4], 0.13893342, 1.0);
    }
}

#[test]
fn backward_rejects_bad_input() {
    let Some(ctx) = ctx() else { return };
    let lstm = Layer::new(ctx, &Params::<f32>::init(Cell::Lstm, 3, 4, 1).unwrap()).unwrap();
    let rnn = Layer::new(ctx, &Params::<f32>::init(Cell::Rnn, 3, 4, 1).unwrap()).unwrap();
    let z = |shape: &[usize]| Tensor::zeros(ctx, "t", shape).unwrap();
    let out = lstm
        .forward(&z(&[2, 5, 3]), None, None, Mode::Training)
        .unwrap();
    let tr = out.trace.as_ref().unwrap();
    expect_err(lstm.backward(tr, &z(&[2, 5, 5]), None), "dh");
    expect_err(lstm.backward(tr, &z(&[3, 5, 4]), None), "dh");
    expect_err(
        lstm.backward(tr, &z(&[2, 5, 4]), Some(&z(&[5, 3]))),
        "dc_last",
    );
    expect_err(rnn.backward(tr, &z(&[2, 5, 4]), None), "trace");
    let rtr = rnn
        .forward(&z(&[2, 5, 3]), None, None, Mode::Training)
        .unwrap()
        .trace
        .unwrap();
    expect_err(
        rnn.backward(&rtr, &z(&[2, 5, 4]), Some(&z(&[5, 4]))),
        "dc_last",
    );
    let mut g = rnn.zero_grads().unwrap();
    expect_err(
        lstm.backward_into(tr, &z(&[2, 5, 4]), None, &mut g, true),
        "grads",
    );
}
