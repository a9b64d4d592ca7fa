//! GPU forward against the CPU reference: a grid of odd and tile-edge shapes, T = 1,
//! saturating inputs, the notebook's forward recipes, the head, and bad input.

mod common;

use common::gpu::{ctx, gl_ctx};
use common::{
    assert_close, case, expect_err, f32a, lstm_packed, lstm_params, Case, NumpyRng, GRID,
};
use ndarray::{s, Array2};
use wgpu_rnn::gpu::{forward_host, Context, GpuHead, Layer, Mode, Tensor};
use wgpu_rnn::{cpu, Cell, Error, Head, Params};

const TOL: f64 = 2e-4;

fn check_forward(ctx: &Context, c: &Case, label: &str) {
    let want = cpu::forward(
        &c.p,
        c.x.view(),
        Some(c.h0.view()),
        c.c0.as_ref().map(|a| a.view()),
    )
    .unwrap();
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
/// T = 1, a large case), outputs NaN-poisoned before the run.
#[test]
fn forward_matches_cpu_on_grid() {
    let Some(ctx) = ctx() else { return };
    for (c, cell) in Cell::ALL.into_iter().enumerate() {
        for (k, &(i, h, b, t)) in GRID.iter().enumerate() {
            check_forward(
                ctx,
                &case(cell, i, h, b, t, 100 * (c as u32 + 1) + k as u32),
                &format!("{cell:?} I={i} H={h} B={b} T={t}"),
            );
        }
    }
}

#[test]
fn saturating_inputs() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        let mut c = case(cell, 9, 17, 5, 4, 7);
        c.x.mapv_inplace(|v| if v >= 0.0 { 30.0 } else { -30.0 });
        c.p.w_ih.mapv_inplace(|v| v * 30.0);
        check_forward(ctx, &c, &format!("{cell:?} saturated"));
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
    let Some(ctx) = gl_ctx() else { return };
    for (k, cell) in Cell::ALL.into_iter().enumerate() {
        for &(i, h, b, t) in &[(3, 17, 5, 3), (65, 33, 6, 2)] {
            check_forward(
                ctx,
                &case(cell, i, h, b, t, 300 + k as u32),
                &format!("GL {cell:?} I={i} H={h} B={b} T={t}"),
            );
        }
    }
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
        let mut rng = NumpyRng::new(1);
        let x = if recipe == 1 {
            rng.randn((3, 10, 1))
        } else {
            rng.randn((3, 10, 4))
        };
        let a0 = rng.randn((5, 10));
        let waa = rng.randn((5, 5));
        let wax = rng.randn((5, 3));
        let wya = rng.randn((2, 5));
        let ba = rng.randn((5, 1));
        let by = rng.randn((2, 1));
        let p = Params::rnn_from_notebook(wax.view(), waa.view(), ba.view())
            .unwrap()
            .cast::<f32>();
        let head = Head::from_notebook(wya.view(), by.view())
            .unwrap()
            .cast::<f32>();
        let layer = Layer::new(ctx, &p).unwrap();
        let xt = Tensor::from_array(ctx, "x", &f32a(&x).permuted_axes([2, 1, 0])).unwrap();
        let h0 = Tensor::from_array(ctx, "h0", &f32a(&a0).t()).unwrap();
        let out = layer
            .forward(&xt, Some(&h0), None, Mode::Inference)
            .unwrap();
        let y = GpuHead::new(ctx, &head)
            .unwrap()
            .forward(&out.h)
            .unwrap()
            .to_array()
            .unwrap();
        let a = out.h.to_array().unwrap(); // [T, m, n_a]
        if recipe == 1 {
            close(
                "a_next[4]",
                &a.slice(s![0, .., 4]).to_vec(),
                &[
                    0.59584544,
                    0.18141802,
                    0.61311866,
                    0.99808218,
                    0.85016201,
                    0.99980978,
                    -0.18887155,
                    0.99815551,
                    0.6531151,
                    0.82872037,
                ],
            );
            close(
                "yt[1]",
                &y.slice(s![0, .., 1]).to_vec(),
                &[
                    0.9888161, 0.01682021, 0.21140899, 0.36817467, 0.98988387, 0.88945212,
                    0.36920224, 0.9966312, 0.9982559, 0.17746526,
                ],
            );
        } else {
            close(
                "a[4][1]",
                &a.slice(s![.., 1, 4]).to_vec(),
                &[-0.99999375, 0.77911235, -0.99861469, -0.99833267],
            );
            close(
                "y[1][3]",
                &y.slice(s![.., 3, 1]).to_vec(),
                &[0.79560373, 0.86224861, 0.11118257, 0.81515947],
            );
        }
    }
    // Recipes 3 and 4: lstm_cell_forward (with c_prev) and lstm_forward (c0 = 0).
    for recipe in [3, 4] {
        let mut rng = NumpyRng::new(1);
        let x = if recipe == 3 {
            rng.randn((3, 10, 1))
        } else {
            rng.randn((3, 10, 7))
        };
        let a0 = rng.randn((5, 10));
        let c0 = if recipe == 3 {
            rng.randn((5, 10))
        } else {
            Array2::zeros((5, 10))
        };
        let np = lstm_params(&mut rng, true);
        let p = lstm_packed(&np).cast::<f32>();
        let layer = Layer::new(ctx, &p).unwrap();
        let xt = Tensor::from_array(ctx, "x", &f32a(&x).permuted_axes([2, 1, 0])).unwrap();
        let h0 = Tensor::from_array(ctx, "h0", &f32a(&a0).t()).unwrap();
        let c0t = Tensor::from_array(ctx, "c0", &f32a(&c0).t()).unwrap();
        let out = layer
            .forward(&xt, Some(&h0), Some(&c0t), Mode::Training)
            .unwrap();
        let head = Head::from_notebook(np.wy.view(), np.by.view())
            .unwrap()
            .cast::<f32>();
        let y = GpuHead::new(ctx, &head)
            .unwrap()
            .forward(&out.h)
            .unwrap()
            .to_array()
            .unwrap();
        let a = out.h.to_array().unwrap();
        let c_last = out.c_last.unwrap().to_array().unwrap();
        if recipe == 3 {
            close(
                "a_next[4]",
                &a.slice(s![0, .., 4]).to_vec(),
                &[
                    -0.66408471,
                    0.0036921,
                    0.02088357,
                    0.22834167,
                    -0.85575339,
                    0.00138482,
                    0.76566531,
                    0.34631421,
                    -0.00215674,
                    0.43827275,
                ],
            );
            close(
                "c_next[2]",
                &c_last.slice(s![.., 2]).to_vec(),
                &[
                    0.63267805,
                    1.00570849,
                    0.35504474,
                    0.20690913,
                    -1.64566718,
                    0.11832942,
                    0.76449811,
                    -0.0981561,
                    -0.74348425,
                    -0.26810932,
                ],
            );
            close(
                "yt[1]",
                &y.slice(s![0, .., 1]).to_vec(),
                &[
                    0.79913913, 0.15986619, 0.22412122, 0.15606108, 0.97057211, 0.31146381,
                    0.00943007, 0.12666353, 0.39380172, 0.07828381,
                ],
            );
        } else {
            let tol = |name: &str, got: f32, want: f64| {
                assert!((got as f64 - want).abs() <= TOL, "{name}: {got} vs {want}")
            };
            tol("a[4][3][6]", a[[6, 3, 4]], 0.17211776753291672);
            tol("y[1][4][3]", y[[3, 4, 1]], 0.9508734618501101);
            // c[1][2][1] is the cell state at step 1: compare the whole c sequence to the CPU.
            let want = wgpu_rnn::notebook::lstm_forward(x.view(), a0.view(), &np).unwrap();
            tol(
                "c[1][2][1] (cpu)",
                want.2[[1, 2, 1]] as f32,
                -0.8555449167181981,
            );
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
