//! GPU backward through time against the f64 CPU backward: the forward grid, T = 1,
//! H = 1, nonzero initial states and final-cell gradient, saturating inputs, a long
//! sequence, accumulation, the notebook's backward recipes, and bad input.

mod common;

use common::gpu::{ctx, gl_variant_ctxs, on_gl, variant_ctxs, variant_label};
use common::recipes::*;
use common::{
    assert_close, assert_grads_close, case, cast_grads, each_case, expect_err, f32a,
    saturated_cases, Case, GRID,
};
use ndarray::Array2;
use wgpu_rnn::cpu::Grads;
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
    let mut want = want;
    want.dx = flip(&want.dx);
    assert_grads_close(label, &g, &cast_grads::<f64, f32>(&want), tol);
}

/// The step schedule: the same kernels run the sequence from its end
/// (`Layer::forward_reversed`, the reverse direction of a bidirectional layer), forward
/// and backward, on both backends, for every cell (T = 1 and odd sizes included).
#[test]
fn reversed_schedule_matches_cpu_on_time_reversed_input() {
    let all = variant_ctxs().into_iter().map(|c| ("default", c));
    for (backend, ctx) in all.chain(gl_variant_ctxs().into_iter().map(|c| ("GL", c))) {
        let shapes = [(3, 17, 5, 4), (1, 1, 1, 1), (65, 33, 9, 3)];
        let prefix = format!("{backend} {}reversed ", variant_label(ctx));
        each_case(
            &shapes,
            |c, _| 900 + c,
            &prefix,
            |c, label| {
                check_direction(ctx, c, label, 2e-4, true);
                // Inference (two ping-pong cell-state slots) and States give the same
                // states as training.
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
                    let label = format!("{label} {mode:?}");
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
            },
        );
    }
}

/// Every cell's backward against the f64 CPU path over the whole grid (nonzero h0, c0
/// and final-cell gradient), outputs NaN-poisoned before the run.
#[test]
fn backward_matches_cpu_on_grid() {
    for ctx in variant_ctxs() {
        let check = |c: &Case, label: &str| check_backward(ctx, c, label, 2e-4);
        each_case(&GRID, |c, k| 500 + 100 * c + k, &variant_label(ctx), check);
    }
}

#[test]
fn gl_backend_backward_matches_cpu() {
    on_gl(&[(3, 17, 5, 3), (65, 33, 2, 2)], 700, |ctx, c, label| {
        check_backward(ctx, c, label, 2e-4)
    });
}

#[test]
fn saturating_inputs_backward() {
    for ctx in variant_ctxs() {
        for (c, label) in saturated_cases() {
            check_backward(ctx, &c, &format!("{}{label}", variant_label(ctx)), 1e-3);
        }
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
        // T·B = 279 rows: the bias sums go through partial sums (past 128 rows), the
        // last part 23 rows long.
        let a = case(cell, 5, 9, 9, 31, 21);
        let mut b = case(cell, 5, 9, 9, 31, 22);
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
        let (dw_ih, _, db, _) = grads.to_host().unwrap();
        assert_close("overwritten dw_ih", &dw_ih, &f32a(&g.dw_ih), 2e-4);
        assert_close("overwritten db", &db, &f32a(&g.db_ih), 2e-4);
    }
}

/// A backward recipe's draws on the GPU with the weights `p`: the forward (training)
/// from a0 (and c_prev) over x's first `T` steps, `T` those of da, and the backward from
/// da (and dc); the notebook's layout converted (sequences `[T, m, ·]`, states
/// `[m, n_a]`), the gradients on the host.
fn notebook_grads<P>(ctx: &Context, p: &Params<f64>, d: &Draws<P>) -> Grads<f32> {
    let da = d.da.as_ref().unwrap();
    let seq = |a: ndarray::ArrayView3<f64>| up(ctx, &a.permuted_axes([2, 1, 0]).to_owned());
    let state = |a: &Array2<f64>| up(ctx, &a.t().to_owned());
    let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
    let x = d.x.slice(ndarray::s![.., .., ..da.dim().2]);
    let c0 = d.c0.as_ref().map(state);
    let out = layer
        .forward(&seq(x), Some(&state(&d.a0)), c0.as_ref(), Mode::Training)
        .unwrap();
    let dc = d.dc.as_ref().map(state);
    layer
        .backward(out.trace.as_ref().unwrap(), &seq(da.view()), dc.as_ref())
        .unwrap()
        .to_cpu()
        .unwrap()
}

/// Asserts that a GPU value is within 2e-4 × max(scale, 1) of the published one.
fn near(name: &str, got: f32, want: f64, scale: f64) {
    assert!(
        ((got as f64) - want).abs() <= 2e-4 * scale.max(1.0),
        "{name}: GPU {got} vs published {want}"
    );
}

/// Asserts the published `dx[1][2]` at every step (scale `dx_scale`) and `da0[2][3]`
/// (scale 1), read in the library's layout.
fn near_dx_da0(g: &Grads<f32>, dx_1_2: &[f64], da0_2_3: f64, dx_scale: f64) {
    for (t, &w) in dx_1_2.iter().enumerate() {
        near("dx[1][2]", g.dx[[t, 2, 1]], w, dx_scale);
    }
    near("da0[2][3]", g.dh0[[3, 2]], da0_2_3, 1.0);
}

/// The notebook's backward recipes 5-8 on the GPU (the notebook's layout converted),
/// against the published gradients: each within 2e-4 of its scale (dx and dW those of
/// the recipe's largest values, the rest 1).
#[test]
fn notebook_backward_recipes_on_gpu() {
    let Some(ctx) = ctx() else { return };
    // Recipes 5 and 6: rnn_cell_backward and rnn_backward.
    for (recipe, want, dx_scale, dw_scale) in [(5, &R5, 1.0, 1.0), (6, &R6, 2.1, 11.3)] {
        let d = rnn_recipe(recipe);
        let g = notebook_grads(ctx, &rnn_packed(&d.p), &d);
        near_dx_da0(&g, want.dx_1_2, want.da0_2_3, dx_scale);
        near("dWax[3][1]", g.dw_ih[[3, 1]], want.dwax_3_1, dw_scale);
        near("dWaa[1][2]", g.dw_hh[[1, 2]], want.dwaa_1_2, dw_scale);
        near("dba[4]", g.db_ih[4], want.dba_4, 1.0);
    }
    // Recipes 7 (with an upstream dc) and 8 (true BPTT over the first 4 of 7 steps).
    for (recipe, want, dx_scale, dw_scale) in [(7, &R7, 3.3, 2.4), (8, &R8, 1.0, 1.0)] {
        let d = lstm_recipe(recipe);
        let g = notebook_grads(ctx, &lstm_packed(&d.p), &d);
        near_dx_da0(&g, want.dx_1_2, want.da0_2_3, dx_scale);
        if let Some(dc) = want.dc_prev_2_3 {
            near("dc_prev[2][3]", g.dc0.as_ref().unwrap()[[3, 2]], dc, 1.0);
        }
        // Notebook dW (n_a, n_a + n_x) on [a; x]: columns 1 and 2 are recurrent columns;
        // the library stacks the gates i, f, g, o.
        let h = 5;
        let dw = [[h + 3, 1], [1, 2], [2 * h + 3, 1], [3 * h + 1, 2]].map(|k| g.dw_hh[k]);
        let db = [h + 4, 4, 2 * h + 4, 3 * h + 4].map(|k| g.db_ih[k]);
        for k in 0..4 {
            near(LSTM_DW_NAMES[k], dw[k], want.dw[k], dw_scale);
            near(LSTM_DB_NAMES[k], db[k], want.db[k], 1.0);
        }
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
