//! GPU forward against the CPU reference: a grid of odd and tile-edge shapes, T = 1,
//! saturating inputs, the notebook's forward recipes, the head, and bad input.

mod common;

use common::gpu::{ctx, on_gl, variant_ctxs, variant_label};
use common::recipes::*;
use common::{
    assert_close, case, each_case, expect_err, f32a, saturated_cases, Case, NumpyRng, GRID,
};
use ndarray::{s, Array2, Array3, ArrayD};
use wgpu_rnn::gpu::{forward_host, Context, GpuHead, Layer, Mode, Tensor};
use wgpu_rnn::{cpu, Cell, Error, Head, Params};

const TOL: f64 = 2e-4;

/// The GPU forward of `c`, in inference and in training, against the f64 CPU path: h,
/// h_last and c_last; a trace only in training.
fn check_forward(ctx: &Context, c: &Case, label: &str) {
    let want = c.cpu_forward();
    let layer = Layer::new(ctx, &c.p.cast::<f32>()).unwrap();
    let x = Tensor::from_array(ctx, "x", &f32a(&c.x)).unwrap();
    let h0 = Tensor::from_array(ctx, "h0", &f32a(&c.h0)).unwrap();
    let c0 =
        c.c0.as_ref()
            .map(|a| Tensor::from_array(ctx, "c0", &f32a(a)).unwrap());
    for mode in [Mode::Inference, Mode::Training] {
        let out = layer.forward(&x, Some(&h0), c0.as_ref(), mode).unwrap();
        let h = out.h.to_array().unwrap();
        assert_close(
            &format!("{label} {mode:?} h"),
            &h,
            &want.h.view().into_dyn().mapv(|v| v as f32),
            TOL,
        );
        let h_last = out.h_last.to_array().unwrap();
        assert_close(
            &format!("{label} {mode:?} h_last"),
            &h_last,
            &want.h_last().unwrap().into_dyn().mapv(|v| v as f32),
            TOL,
        );
        if let Some(cl) = want.c_last() {
            let got = out.c_last.as_ref().unwrap().to_array().unwrap();
            assert_close(
                &format!("{label} {mode:?} c_last"),
                &got,
                &cl.into_dyn().mapv(|v| v as f32),
                TOL,
            );
        }
        assert_eq!(out.trace.is_some(), mode == Mode::Training);
    }
}

/// Every cell against the f64 CPU path over the whole grid (odd sizes, tile edges,
/// T = 1, a large case), outputs NaN-poisoned before the run, in every step variant.
#[test]
fn forward_matches_cpu_on_grid() {
    for ctx in variant_ctxs() {
        let check = |c: &Case, label: &str| check_forward(ctx, c, label);
        each_case(&GRID, |c, k| 100 * (c + 1) + k, &variant_label(ctx), check);
    }
}

#[test]
fn saturating_inputs() {
    for ctx in variant_ctxs() {
        for (mut c, label) in saturated_cases() {
            c.p.w_ih.mapv_inplace(|v| v * 30.0);
            check_forward(ctx, &c, &format!("{}{label}", variant_label(ctx)));
        }
    }
}

#[test]
fn zero_initial_state_by_default() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        let c = case(cell, 4, 6, 3, 3, 9);
        let p32 = c.p.cast::<f32>();
        let layer = Layer::new(ctx, &p32).unwrap();
        let (h, c_last) = forward_host(&layer, f32a(&c.x).view(), None, None).unwrap();
        let want = cpu::forward(&c.p, c.x.view(), None, None).unwrap();
        assert_close("h", &h, &want.h.mapv(|v| v as f32), TOL);
        if let Some(cl) = want.c_last() {
            assert_close(
                "c_last",
                c_last.as_ref().unwrap(),
                &cl.mapv(|v| v as f32),
                TOL,
            );
        }
    }
}

#[test]
fn gl_backend_matches_cpu() {
    on_gl(&[(3, 17, 5, 3), (65, 33, 6, 2)], 300, check_forward);
}

#[test]
fn head_matches_cpu_including_huge_logits() {
    let Some(ctx) = ctx() else { return };
    let mut rng = NumpyRng::new(5);
    for &(t, b, h, classes, scale) in &[
        (3, 5, 17, 7, 1.0),
        (2, 3, 4, 1, 1.0),
        (2, 66, 9, 130, 1.0),
        (1, 4, 3, 5, 500.0),
    ] {
        let w = rng.randn((classes, h)) * scale;
        let head = Head::new(w, rng.randn(classes)).unwrap();
        let hs = rng.uniform_array((t, b, h), -1.0, 1.0);
        let want = cpu::head_forward(&head, hs.view()).unwrap();
        let g = GpuHead::new(ctx, &head.cast::<f32>()).unwrap();
        let y = g
            .forward(&Tensor::from_array(ctx, "h", &f32a(&hs)).unwrap())
            .unwrap();
        let y = y.to_array().unwrap();
        assert_close(
            &format!("y T={t} B={b} H={h} C={classes} scale={scale}"),
            &y,
            &want.mapv(|v| v as f32).into_dyn(),
            TOL,
        );
    }
}

/// A recipe's draws (the notebook's layout: x `(n_x, m, T)`, states `(n_a, m)`) through
/// the GPU layer `p` from `a0` (and `c0`) and the head: a and y `[T, m, ·]`, and the last
/// cell state `[m, n_a]` of cells with one.
fn notebook_on_gpu(
    ctx: &Context,
    (p, head): (&Params<f64>, &Head<f64>),
    x: &Array3<f64>,
    (a0, c0): (&Array2<f64>, Option<&Array2<f64>>),
    mode: Mode,
) -> (ArrayD<f32>, ArrayD<f32>, Option<ArrayD<f32>>) {
    let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
    let xt = Tensor::from_array(ctx, "x", &f32a(x).permuted_axes([2, 1, 0])).unwrap();
    let h0 = Tensor::from_array(ctx, "h0", &f32a(a0).t()).unwrap();
    let c0 = c0.map(|c0| Tensor::from_array(ctx, "c0", &f32a(c0).t()).unwrap());
    let out = layer.forward(&xt, Some(&h0), c0.as_ref(), mode).unwrap();
    let y = GpuHead::new(ctx, &head.cast::<f32>())
        .unwrap()
        .forward(&out.h)
        .unwrap()
        .to_array()
        .unwrap();
    let c_last = out.c_last.map(|c| c.to_array().unwrap());
    (out.h.to_array().unwrap(), y, c_last)
}

/// The notebook's forward recipes 1-4 on the GPU, against its published numbers.
#[test]
fn notebook_forward_recipes_on_gpu() {
    let Some(ctx) = ctx() else { return };
    let close = |name: &str, got: &[f32], want: &[f64]| {
        let g = ndarray::Array1::from(got.to_vec());
        let w = ndarray::Array1::from(want.to_vec());
        assert_close(name, &g, &w.mapv(|v| v as f32), TOL);
    };
    // Recipe 2: rnn_forward (recipe 1 is its first step with other draws: checked too).
    for recipe in [1, 2] {
        let d = rnn_recipe(recipe);
        let model = (
            &rnn_packed(&d.p),
            &Head::from_notebook(d.p.wya.view(), d.p.by.view()).unwrap(),
        );
        let (a, y, _) = notebook_on_gpu(ctx, model, &d.x, (&d.a0, None), Mode::Inference);
        if recipe == 1 {
            close("a_next[4]", &a.slice(s![0, .., 4]).to_vec(), &R1_A_NEXT_4);
            close("yt[1]", &y.slice(s![0, .., 1]).to_vec(), &R1_YT_1);
        } else {
            close("a[4][1]", &a.slice(s![.., 1, 4]).to_vec(), &R2_A_4_1);
            close("y[1][3]", &y.slice(s![.., 3, 1]).to_vec(), &R2_Y_1_3);
        }
    }
    // Recipes 3 and 4: lstm_cell_forward (with c_prev) and lstm_forward (c0 = 0).
    for recipe in [3, 4] {
        let d = lstm_recipe(recipe);
        let c0 = d.c0.clone().unwrap_or_else(|| Array2::zeros((5, 10)));
        let model = (
            &lstm_packed(&d.p),
            &Head::from_notebook(d.p.wy.view(), d.p.by.view()).unwrap(),
        );
        let (a, y, c_last) = notebook_on_gpu(ctx, model, &d.x, (&d.a0, Some(&c0)), Mode::Training);
        let c_last = c_last.unwrap();
        if recipe == 3 {
            close("a_next[4]", &a.slice(s![0, .., 4]).to_vec(), &R3_A_NEXT_4);
            close("c_next[2]", &c_last.slice(s![.., 2]).to_vec(), &R3_C_NEXT_2);
            close("yt[1]", &y.slice(s![0, .., 1]).to_vec(), &R3_YT_1);
        } else {
            let tol = |name: &str, got: f32, want: f64| {
                assert!((got as f64 - want).abs() <= TOL, "{name}: {got} vs {want}")
            };
            tol("a[4][3][6]", a[[6, 3, 4]], R4_A_4_3_6);
            tol("y[1][4][3]", y[[3, 4, 1]], R4_Y_1_4_3);
            // c[1][2][1] is the cell state at step 1: compare the whole c sequence to the CPU.
            let want = wgpu_rnn::notebook::lstm_forward(d.x.view(), d.a0.view(), &d.p).unwrap();
            tol("c[1][2][1] (cpu)", want.2[[1, 2, 1]] as f32, R4_C_1_2_1);
            close(
                "c_last",
                &c_last.iter().copied().collect::<Vec<_>>(),
                &want
                    .2
                    .slice(s![.., .., 6])
                    .t()
                    .iter()
                    .copied()
                    .collect::<Vec<_>>(),
            );
        }
    }
}

#[test]
fn bad_input_is_rejected_before_dispatch() {
    let Some(ctx) = ctx() else { return };
    let p = Params::<f32>::init(Cell::Lstm, 3, 4, 1).unwrap();
    let layer = Layer::new(ctx, &p).unwrap();
    let z = |shape: &[usize]| Tensor::zeros(ctx, "t", shape).unwrap();
    expect_err(
        layer.forward(&z(&[2, 5, 4]), None, None, Mode::Inference),
        "x",
    );
    expect_err(layer.forward(&z(&[5, 3]), None, None, Mode::Inference), "x");
    expect_err(
        layer.forward(&z(&[2, 5, 3]), Some(&z(&[5, 5])), None, Mode::Inference),
        "h0",
    );
    expect_err(
        layer.forward(&z(&[2, 5, 3]), None, Some(&z(&[4, 4])), Mode::Inference),
        "c0",
    );
    let rnn = Layer::new(ctx, &Params::<f32>::init(Cell::Rnn, 3, 4, 1).unwrap()).unwrap();
    expect_err(
        rnn.forward(&z(&[2, 5, 3]), None, Some(&z(&[5, 4])), Mode::Inference),
        "c0",
    );
    let mut bad = p.clone();
    bad.w_ih = Array2::zeros((12, 3));
    expect_err(Layer::new(ctx, &bad), "w_ih");
    bad.w_hh = Array2::zeros((16, 5));
    expect_err(Layer::new(ctx, &bad), "w_hh");
    // A tensor over the device's storage-binding limit is refused before allocation.
    let limit = ctx.limits().max_storage_buffer_binding_size;
    let t = (limit / 4 / 16 + 1) as usize;
    expect_err(Tensor::zeros(ctx, "x", &[t, 4, 4]), "x");
    let big = Layer::new(ctx, &Params::<f32>::zeros(Cell::Lstm, 1, 4).unwrap()).unwrap();
    // x itself is small, but the projection [T, B, 4H] would not fit.
    let steps = (limit / (4 * 16 * 4)) as usize + 1;
    let x = Tensor::zeros(ctx, "x", &[steps, 4, 1]).unwrap();
    expect_err(big.forward(&x, None, None, Mode::Inference), "x");
    // A sequence so long that its step schedule (256 bytes a step) would not fit.
    let max = ctx.limits().max_buffer_size;
    let steps = (max / 256) as usize + 1;
    if steps * 4 <= limit as usize {
        let rnn1 = Layer::new(ctx, &Params::<f32>::zeros(Cell::Rnn, 1, 1).unwrap()).unwrap();
        let x = Tensor::zeros(ctx, "x", &[steps, 1, 1]).unwrap();
        match rnn1.forward(&x, None, None, Mode::Inference) {
            Err(Error::TooLarge { arg: "x", .. }) => {}
            other => panic!("expected TooLarge naming `x`, got {other:?}"),
        }
    }
    let head = GpuHead::new(
        ctx,
        &Head::new(Array2::<f32>::zeros((2, 4)), ndarray::Array1::zeros(2)).unwrap(),
    )
    .unwrap();
    expect_err(head.forward(&z(&[2, 5, 3])), "h");
    expect_err(
        GpuHead::new(
            ctx,
            &Head {
                w_y: Array2::<f32>::zeros((2, 4)),
                b_y: ndarray::Array1::zeros(3),
            },
        ),
        "b_y",
    );
}

/// The whole cell-state sequence, on request in inference and always in training.
#[test]
fn cell_state_sequence_on_request() {
    let Some(ctx) = ctx() else { return };
    let c = case(Cell::Lstm, 5, 9, 3, 4, 31);
    let p32 = c.p.cast::<f32>();
    let layer = Layer::new(ctx, &p32).unwrap();
    let x = Tensor::from_array(ctx, "x", &f32a(&c.x)).unwrap();
    let want = cpu::forward(&c.p, c.x.view(), None, None).unwrap();
    for mode in [Mode::States, Mode::Training] {
        let out = layer.forward(&x, None, None, mode).unwrap();
        let got = out
            .c
            .as_ref()
            .expect("every cell state")
            .to_array()
            .unwrap();
        assert_close(
            &format!("{mode:?} c"),
            &got,
            &want.c.as_ref().unwrap().mapv(|v| v as f32).into_dyn(),
            TOL,
        );
        assert_eq!(out.trace.is_some(), mode == Mode::Training);
    }
    let out = layer.forward(&x, None, None, Mode::Inference).unwrap();
    assert!(out.c.is_none(), "plain inference keeps two slots only");
    // A cell without a cell state has none to return.
    let rnn = Layer::new(ctx, &Params::<f32>::init(Cell::Rnn, 5, 9, 1).unwrap()).unwrap();
    assert!(rnn
        .forward(&x, None, None, Mode::States)
        .unwrap()
        .c
        .is_none());
}
