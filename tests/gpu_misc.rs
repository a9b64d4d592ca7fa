//! The GEMM on its own at odd sizes, stacked layers (views with offsets), determinism
//! between runs (a moving result is a race), and the async download.

mod common;

use common::gpu::{ctx, gl_ctx, gl_variant_ctxs, variant_ctxs, variant_label};
use common::{assert_close, NumpyRng};
use ndarray::{Array2, Ix2, Ix3};
use wgpu_rnn::gpu::{
    col_sum_raw, gemm_raw, matmul, Context, ContextOptions, GemmSpec, GemmVariant, Layer, Mode,
    StepVariant, Tensor,
};
use wgpu_rnn::{cpu, Cell, Error, Params};

#[test]
fn matmul_matches_ndarray_at_odd_sizes() {
    for ctx in variant_ctxs() {
        matmul_at_odd_sizes(ctx);
    }
}

fn matmul_at_odd_sizes(ctx: &Context) {
    let v = variant_label(ctx);
    let mut rng = NumpyRng::new(3);
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 17, 33),
        (65, 130, 1),
        (130, 3, 65),
        (64, 64, 64),
        (17, 200, 129),
    ] {
        let a = rng.randn((m, k)).mapv(|v| v as f32);
        let b = rng.randn((k, n)).mapv(|v| v as f32);
        let ta = Tensor::from_array(ctx, "a", &a).unwrap();
        let tb = Tensor::from_array(ctx, "b", &b).unwrap();
        let c = matmul(&ta, &tb).unwrap().to_array().unwrap();
        let want = a
            .mapv(|v| v as f64)
            .dot(&b.mapv(|v| v as f64))
            .mapv(|v| v as f32);
        assert_close(
            &format!("{v}matmul {m}x{k}x{n}"),
            &c,
            &want.into_dyn(),
            2e-4,
        );
    }
    // More row tiles than one grid dimension holds (65535 × 128 rows for either
    // variant's tiles): folded into z.
    let m = 65535 * 128 + 70;
    let a = ndarray::Array2::from_shape_fn((m, 1), |(r, _)| (r % 1000) as f32);
    let b = ndarray::array![[2.0f32, -1.0]];
    let c = matmul(
        &Tensor::from_array(ctx, "a", &a).unwrap(),
        &Tensor::from_array(ctx, "b", &b).unwrap(),
    )
    .unwrap()
    .to_array()
    .unwrap();
    let want = a.dot(&b);
    assert!(c == want.into_dyn(), "{v}tall matmul differs");

    let a = Tensor::zeros(ctx, "a", &[3, 4]).unwrap();
    match matmul(&a, &Tensor::zeros(ctx, "b", &[5, 2]).unwrap()) {
        Err(Error::Shape { arg: "b", .. }) => {}
        other => panic!("expected a shape error naming `b`, got {other:?}"),
    }
    match matmul(&Tensor::zeros(ctx, "a", &[3]).unwrap(), &a) {
        Err(Error::Shape { arg: "a", .. }) => {}
        other => panic!("expected a shape error naming `a`, got {other:?}"),
    }
}

/// The GEMM's paths (interior tiles, edges, aligned vec4 and misaligned scalar loads,
/// every transpose, bias and accumulate, K not a multiple of the K step, K = 1, blocks of
/// wider matrices) against ndarray, on raw operands; C's block NaN-poisoned (or random
/// when accumulating) and the elements around it checked untouched.
#[test]
fn gemm_paths_match_ndarray() {
    for ctx in variant_ctxs() {
        gemm_paths(ctx, &variant_label(ctx), false);
    }
    if ctx().is_some() {
        let ctx = k_step_8(None);
        gemm_paths(&ctx, "[tiled, K step 8] ", false);
    }
}

/// As [`gemm_paths_match_ndarray`], on GL (fewer shapes: GL is slow).
#[test]
fn gemm_paths_match_ndarray_on_gl() {
    for ctx in gl_variant_ctxs() {
        gemm_paths(ctx, &format!("GL {}", variant_label(ctx)), true);
    }
    if gl_ctx().is_some() {
        let ctx = k_step_8(Some(wgpu::Backends::GL));
        gemm_paths(&ctx, "GL [tiled, K step 8] ", true);
    }
}

/// A context with the tiled GEMM in its smaller K step (the software adapters have the
/// workgroup memory for 16, which they take by default); a K step outside the list is
/// refused.
fn k_step_8(backends: Option<wgpu::Backends>) -> Context {
    let opts = |bk| ContextOptions {
        backends,
        poison_outputs: true,
        gemm: Some(GemmVariant::Tiled),
        gemm_k_step: Some(bk),
        ..Default::default()
    };
    match Context::with_options(opts(12)) {
        Err(Error::Invalid { arg, .. }) => assert_eq!(arg, "ContextOptions::gemm_k_step"),
        other => panic!("K step 12: {:?}", other.map(|c| c.describe())),
    }
    let ctx = Context::with_options(opts(8)).unwrap();
    assert_eq!(ctx.gemm_k_step(), 8);
    // Twice the K steps per dispatch of the default: still under llvmpipe's loop guard
    // (see `long_reductions_are_not_cut_short`).
    let mut rng = NumpyRng::new(15);
    let a = rng.uniform_array((4, 70_000), -1.0, 1.0);
    let b = rng.uniform_array((70_000, 3), -1.0, 1.0);
    let up = |x: &Array2<f64>| Tensor::from_array(&ctx, "t", &x.mapv(|v| v as f32)).unwrap();
    let got = matmul(&up(&a), &up(&b)).unwrap().to_array().unwrap();
    assert_close(
        "K step 8: matmul K = 70000",
        &got,
        &a.dot(&b).into_dyn(),
        1e-4,
    );
    ctx
}

fn gemm_paths(ctx: &Context, v: &str, few: bool) {
    let mut rng = NumpyRng::new(14);
    // (M, N, K): whole tiles of either kernel (128 × 64 tiled, 64 × 64 direct) with K a
    // multiple of the K step; edges in M, N and K; K = 1; tiny.
    let shapes: &[(usize, usize, usize)] = if few {
        &[(256, 128, 40), (130, 67, 19), (3, 5, 1)]
    } else {
        &[
            (128, 64, 16),
            (256, 128, 40),
            (130, 67, 19),
            (129, 65, 8),
            (64, 192, 1),
            (3, 5, 1),
            (17, 33, 130),
        ]
    };
    // Offsets of A, B, C, bias and the padding added to each stored row of A, B, C:
    // packed and aligned; all misaligned; aligned blocks of wider matrices; A aligned
    // and B misaligned.
    let layouts: [([usize; 4], [usize; 3]); 4] = [
        ([0, 0, 0, 0], [0, 0, 0]),
        ([1, 3, 5, 2], [1, 3, 2]),
        ([4, 8, 12, 4], [4, 8, 4]),
        ([4, 1, 0, 0], [4, 1, 0]),
    ];
    let mut case = 0usize;
    for &(m, n, k) in shapes {
        for trans in 0..4 {
            let (trans_a, trans_b) = (trans & 1 != 0, trans & 2 != 0);
            for (li, &(off, pad)) in layouts.iter().enumerate() {
                case += 1;
                let (bias_on, accumulate) = ((li + trans) % 2 == 0, (li + trans / 2) % 2 == 1);
                let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
                let (br, bc) = if trans_b { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (ac + pad[0], bc + pad[1], n + pad[2]);
                // Every element random, the padding too: a read outside the extent
                // shows up in the product.
                let a = rng.randn(off[0] + ar * lda + 3).mapv(|x| x as f32);
                let b = rng.randn(off[1] + br * ldb + 3).mapv(|x| x as f32);
                let bias = rng.randn(off[3] + n + 2).mapv(|x| x as f32);
                let mut c = rng.randn(off[2] + m * ldc + 5).mapv(|x| x as f32);
                if !accumulate {
                    for i in 0..m {
                        for j in 0..n {
                            c[off[2] + i * ldc + j] = f32::NAN;
                        }
                    }
                }
                let op_a = |i: usize, kk: usize| {
                    let e = if trans_a { kk * lda + i } else { i * lda + kk };
                    a[off[0] + e] as f64
                };
                let op_b = |kk: usize, j: usize| {
                    let e = if trans_b { j * ldb + kk } else { kk * ldb + j };
                    b[off[1] + e] as f64
                };
                let want = Array2::from_shape_fn((m, n), |(i, j)| {
                    let mut x: f64 = (0..k).map(|kk| op_a(i, kk) * op_b(kk, j)).sum();
                    if bias_on {
                        x += bias[off[3] + j] as f64;
                    }
                    if accumulate {
                        x += c[off[2] + i * ldc + j] as f64;
                    }
                    x
                });
                let tc = Tensor::from_array(ctx, "c", &c).unwrap();
                let tbias = Tensor::from_array(ctx, "bias", &bias).unwrap();
                let spec = GemmSpec {
                    m,
                    n,
                    k,
                    off,
                    ld: [lda, ldb, ldc],
                    trans_a,
                    trans_b,
                    accumulate,
                };
                gemm_raw(
                    &Tensor::from_array(ctx, "a", &a).unwrap(),
                    &Tensor::from_array(ctx, "b", &b).unwrap(),
                    bias_on.then_some(&tbias),
                    &tc,
                    &spec,
                )
                .unwrap();
                let got = tc.to_array().unwrap();
                let got = got.as_slice().unwrap();
                let label = format!(
                    "{v}gemm #{case} {m}x{n}x{k} trans {trans_a}/{trans_b} offsets {off:?} \
                     ld {lda}/{ldb}/{ldc} bias {bias_on} accumulate {accumulate}"
                );
                let block = Array2::from_shape_fn((m, n), |(i, j)| got[off[2] + i * ldc + j]);
                assert_close(&label, &block, &want, 2e-4);
                for (e, (g, w)) in got.iter().zip(c.iter()).enumerate() {
                    let inside = e >= off[2] && {
                        let (i, j) = ((e - off[2]) / ldc, (e - off[2]) % ldc);
                        i < m && j < n
                    };
                    assert!(
                        inside || g.to_bits() == w.to_bits(),
                        "{label}: element {e} outside C's block written"
                    );
                }
            }
        }
    }
    // An operand past its tensor (here its whole buffer: buffers hold whole multiples
    // of 4 elements) is refused: the kernels run without bounds checks.
    let t = |len: usize| Tensor::from_array(ctx, "x", &ndarray::Array1::<f32>::zeros(len)).unwrap();
    let spec = GemmSpec {
        m: 4,
        n: 4,
        k: 4,
        ..Default::default()
    };
    let (a, b, c) = (t(16), t(16), t(16));
    gemm_raw(&a, &b, None, &c, &spec).unwrap();
    common::expect_err(gemm_raw(&t(12), &b, None, &c, &spec), "a");
    common::expect_err(gemm_raw(&a, &t(12), None, &c, &spec), "b");
    let bias_off = GemmSpec {
        off: [0, 0, 0, 1],
        ..spec
    };
    common::expect_err(gemm_raw(&a, &b, Some(&t(4)), &c, &bias_off), "bias");
    let off = GemmSpec {
        off: [0, 0, 1, 0],
        ..spec
    };
    common::expect_err(gemm_raw(&a, &b, None, &c, &off), "c");
    let ld = GemmSpec {
        ld: [5, 0, 0],
        ..spec
    };
    common::expect_err(gemm_raw(&a, &b, None, &c, &ld), "a");
}

/// Layer 2 reads layer 1's hidden states in place (a view at an offset), and backward
/// takes an upstream gradient that is itself a view at an offset.
#[test]
fn stacked_layers_and_offset_views() {
    let Some(ctx) = ctx() else { return };
    let (t, b, i, h1, h2) = (4, 3, 5, 7, 6);
    let p1 = Params::<f64>::init(Cell::Lstm, i, h1, 1).unwrap();
    let p2 = Params::<f64>::init(Cell::Rnn, h1, h2, 2).unwrap();
    let mut rng = NumpyRng::new(4);
    let x = rng.randn((t, b, i));
    let l1 = Layer::new(ctx, &p1.cast()).unwrap();
    let l2 = Layer::new(ctx, &p2.cast()).unwrap();
    let xt = Tensor::from_array(ctx, "x", &x.mapv(|v| v as f32)).unwrap();
    let o1 = l1.forward(&xt, None, None, Mode::Training).unwrap();
    assert!(o1.h.offset() > 0, "h is a view past h0's slot");
    let o2 = l2.forward(&o1.h, None, None, Mode::Training).unwrap();
    let c1 = cpu::forward(&p1, x.view(), None, None).unwrap();
    let c2 = cpu::forward(&p2, c1.h.view(), None, None).unwrap();
    assert_close(
        "h2",
        &o2.h.to_array().unwrap(),
        &c2.h.mapv(|v| v as f32).into_dyn(),
        2e-4,
    );
    // Backward through both; layer 2's dx is layer 1's dh. Upstream dh for layer 2 is
    // a view (h2 itself, at an offset).
    let g2 = l2
        .backward(o2.trace.as_ref().unwrap(), &o2.h, None)
        .unwrap();
    let g1 = l1
        .backward(o1.trace.as_ref().unwrap(), &g2.dx, None)
        .unwrap();
    let w2 = cpu::backward(&p2, &c2, c2.h.view(), None).unwrap();
    let w1 = cpu::backward(&p1, &c1, w2.dx.view(), None).unwrap();
    let got = g1.to_cpu().unwrap();
    assert_close("dx", &got.dx, &w1.dx.mapv(|v| v as f32), 2e-4);
    assert_close("dw_hh", &got.dw_hh, &w1.dw_hh.mapv(|v| v as f32), 2e-4);
    assert_close(
        "dw_ih 2",
        &g2.to_cpu().unwrap().dw_ih,
        &w2.dw_ih.mapv(|v| v as f32),
        2e-4,
    );
}

/// The same inputs give bit-identical outputs run after run, in every step variant:
/// every element is written by one invocation, in one order (a split product's partial
/// sums added in slice order), with no race between dispatches.
#[test]
fn results_are_deterministic() {
    for ctx in variant_ctxs() {
        deterministic(ctx);
    }
}

fn deterministic(ctx: &Context) {
    let v = variant_label(ctx);
    let mut rng = NumpyRng::new(8);
    for cell in Cell::ALL {
        let (t, b, i, h) = (6, 9, 33, 65);
        let p = Params::<f32>::init(cell, i, h, 5).unwrap();
        let layer = Layer::new(ctx, &p).unwrap();
        let x = Tensor::from_array(ctx, "x", &rng.randn((t, b, i)).mapv(|v| v as f32)).unwrap();
        let dh = Tensor::from_array(ctx, "dh", &rng.randn((t, b, h)).mapv(|v| v as f32)).unwrap();
        let run = || {
            let out = layer.forward(&x, None, None, Mode::Training).unwrap();
            let g = layer
                .backward(out.trace.as_ref().unwrap(), &dh, None)
                .unwrap()
                .to_cpu()
                .unwrap();
            let h = out
                .h
                .to_array()
                .unwrap()
                .into_dimensionality::<Ix3>()
                .unwrap();
            // Taken: the gradients give their buffers back to the crate when dropped.
            let mut g = g;
            let take = |a: &mut Array2<f32>| std::mem::take(a);
            (
                h,
                std::mem::take(&mut g.dx),
                take(&mut g.dw_ih),
                take(&mut g.dw_hh),
                std::mem::take(&mut g.db_ih),
            )
        };
        let first = run();
        for _ in 0..3 {
            let again = run();
            assert!(first.0 == again.0, "{v}{cell:?}: h differs between runs");
            assert!(first.1 == again.1, "{v}{cell:?}: dx differs between runs");
            assert!(
                first.2 == again.2,
                "{v}{cell:?}: dw_ih differs between runs"
            );
            assert!(
                first.3 == again.3,
                "{v}{cell:?}: dw_hh differs between runs"
            );
            assert!(first.4 == again.4, "{v}{cell:?}: db differs between runs");
        }
    }
}

/// A step variant that is not built is an error naming where it came from, whether
/// from the options or from the environment's syntax.
#[test]
fn unbuilt_step_variants_are_refused() {
    if ctx().is_none() {
        return;
    }
    for step in [
        StepVariant {
            split: 3,
            rows: 8,
            cols: 1,
        },
        StepVariant {
            split: 8,
            rows: 16,
            cols: 1,
        },
        StepVariant {
            split: 0,
            rows: 1,
            cols: 1,
        },
        StepVariant {
            split: 1,
            rows: 8,
            cols: 3,
        },
        StepVariant {
            split: 4,
            rows: 4,
            cols: 4,
        },
    ] {
        let r = Context::with_options(ContextOptions {
            step: Some(step),
            ..Default::default()
        });
        match r {
            Err(Error::Invalid { arg, msg }) => {
                assert_eq!(arg, "ContextOptions::step", "{step:?}: {msg}");
            }
            other => panic!("{step:?}: {:?}", other.map(|c| c.describe())),
        }
    }
    for v in StepVariant::all() {
        let ctx = Context::with_options(ContextOptions {
            step: Some(v),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ctx.step_variant(), v);
        assert!(ctx.describe().contains(&v.to_string()));
    }
}

#[test]
fn async_download() {
    let Some(ctx) = ctx() else { return };
    let a = Array2::from_shape_fn((5, 3), |(r, c)| (r * 3 + c) as f32);
    let t = Tensor::from_array(ctx, "a", &a).unwrap();
    let back = pollster::block_on(t.to_array_async())
        .unwrap()
        .into_dimensionality::<Ix2>()
        .unwrap();
    assert_eq!(back, a);
    // A transposed (non-standard layout) upload is read in logical order.
    let tt = Tensor::from_array(ctx, "a", &a.t()).unwrap();
    assert_eq!(
        tt.to_array().unwrap().into_dimensionality::<Ix2>().unwrap(),
        a.t()
    );
}

/// A tensor of one context passed to another context's layer is an error naming it.
#[test]
fn tensors_of_another_context_are_rejected() {
    let (Some(vk), Some(gl)) = (ctx(), gl_ctx()) else {
        return;
    };
    assert!(!vk.same(gl) && vk.same(vk));
    let layer = Layer::new(vk, &Params::<f32>::init(Cell::Lstm, 3, 4, 1).unwrap()).unwrap();
    let foreign = Tensor::zeros(gl, "x", &[2, 5, 3]).unwrap();
    match layer.forward(&foreign, None, None, Mode::Inference) {
        Err(Error::Invalid { arg: "x", .. }) => {}
        other => panic!("expected an error naming `x`, got {other:?}"),
    }
    let x = Tensor::zeros(vk, "x", &[2, 5, 3]).unwrap();
    let h0 = Tensor::zeros(gl, "h0", &[5, 4]).unwrap();
    match layer.forward(&x, Some(&h0), None, Mode::Inference) {
        Err(Error::Invalid { arg: "h0", .. }) => {}
        other => panic!("expected an error naming `h0`, got {other:?}"),
    }
    let out = layer.forward(&x, None, None, Mode::Training).unwrap();
    match layer.backward(
        out.trace.as_ref().unwrap(),
        &Tensor::zeros(gl, "dh", &[2, 5, 4]).unwrap(),
        None,
    ) {
        Err(Error::Invalid { arg: "dh", .. }) => {}
        other => panic!("expected an error naming `dh`, got {other:?}"),
    }
    match matmul(
        &Tensor::zeros(vk, "a", &[2, 3]).unwrap(),
        &Tensor::zeros(gl, "b", &[3, 2]).unwrap(),
    ) {
        Err(Error::Invalid { arg: "b", .. }) => {}
        other => panic!("expected an error naming `b`, got {other:?}"),
    }
}

/// `set_params` swaps the weights in place: the next forward uses the new ones.
#[test]
fn set_params_updates_the_weights() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        let (t, b, i, h) = (3, 4, 5, 6);
        let p1 = Params::<f32>::init(cell, i, h, 1).unwrap();
        let p2 = Params::<f32>::init(cell, i, h, 2).unwrap();
        let x_host = NumpyRng::new(9).randn((t, b, i)).mapv(|v| v as f32);
        let x = Tensor::from_array(ctx, "x", &x_host).unwrap();
        let layer = Layer::new(ctx, &p1).unwrap();
        let before = layer.forward(&x, None, None, Mode::Training).unwrap();
        layer.set_params(&p2).unwrap();
        let after = layer.forward(&x, None, None, Mode::Training).unwrap();
        let want1 = cpu::forward(&p1, x_host.view(), None, None).unwrap();
        let want2 = cpu::forward(&p2, x_host.view(), None, None).unwrap();
        assert_close(
            "before",
            &before.h.to_array().unwrap(),
            &want1.h.clone().into_dyn(),
            2e-4,
        );
        assert_close(
            "after",
            &after.h.to_array().unwrap(),
            &want2.h.clone().into_dyn(),
            2e-4,
        );
        // Backward uses the new recurrent weights too.
        let dh = Tensor::from_array(ctx, "dh", &ndarray::Array3::<f32>::ones((t, b, h))).unwrap();
        let g = layer
            .backward(after.trace.as_ref().unwrap(), &dh, None)
            .unwrap()
            .to_cpu()
            .unwrap();
        let w = cpu::backward(
            &p2,
            &want2,
            ndarray::Array3::<f32>::ones((t, b, h)).view(),
            None,
        )
        .unwrap();
        assert_close("dx after", &g.dx, &w.dx, 2e-4);
        match layer.set_params(&Params::<f32>::init(cell, i + 1, h, 3).unwrap()) {
            Err(Error::Invalid { arg: "params", .. }) => {}
            other => panic!("expected an error naming `params`, got {other:?}"),
        }
    }
}

/// Reductions longer than 65535 iterations, which llvmpipe (lavapipe, GL) cuts short
/// inside one dispatch: a GEMM with K = 70000, and a backward whose weight gradients sum
/// over T·B = 70000 rows (GEMMs, and the bias column sum's 1,094 partial sums), on both
/// backends.
#[test]
fn long_reductions_are_not_cut_short() {
    for ctx in variant_ctxs().into_iter().chain(gl_variant_ctxs()) {
        let mut rng = NumpyRng::new(12);
        let a = rng.uniform_array((4, 70_000), -1.0, 1.0);
        let b = rng.uniform_array((70_000, 3), -1.0, 1.0);
        let up = |x: &Array2<f64>| Tensor::from_array(ctx, "t", &x.mapv(|v| v as f32)).unwrap();
        let got = matmul(&up(&a), &up(&b)).unwrap().to_array().unwrap();
        let want = a.dot(&b).into_dyn();
        assert_close("matmul K = 70000", &got, &want, 1e-4);

        let (t, bsz) = (35, 2000);
        let p = Params::<f64>::init(Cell::Rnn, 1, 1, 3).unwrap();
        let x = rng.uniform_array((t, bsz, 1), -1.0, 1.0);
        let dh = rng.uniform_array((t, bsz, 1), -1.0, 1.0);
        let tr = cpu::forward(&p, x.view(), None, None).unwrap();
        let want = cpu::backward(&p, &tr, dh.view(), None).unwrap();
        let layer = Layer::new(ctx, &p.cast::<f32>()).unwrap();
        let x3 = Tensor::from_array(ctx, "x", &x.mapv(|v| v as f32)).unwrap();
        let out = layer.forward(&x3, None, None, Mode::Training).unwrap();
        let dh3 = Tensor::from_array(ctx, "dh", &dh.mapv(|v| v as f32)).unwrap();
        let g = layer
            .backward(out.trace.as_ref().unwrap(), &dh3, None)
            .unwrap()
            .to_cpu()
            .unwrap();
        assert_close("dw_ih over 70000 rows", &g.dw_ih, &want.dw_ih, 1e-4);
        assert_close("dw_hh over 70000 rows", &g.dw_hh, &want.dw_hh, 1e-4);
        assert_close("db over 70000 rows", &g.db_ih, &want.db_ih, 1e-4);
    }
}

/// The column sum's long paths: 4,194,340 rows make 65,538 partial sums of 64 rows (two
/// dispatches of at most 65,535 parts), whose sum runs in three dispatches of at most
/// 32,768 rows (llvmpipe's loop cut); small integers, so every partial and total sum is
/// exact in f32 and the result must equal the f64 sum; on both backends.
#[test]
fn long_column_sums_are_exact() {
    for ctx in [ctx(), gl_ctx()].into_iter().flatten() {
        let (rows, cols) = (65_535 * 64 + 100, 2);
        let x = ndarray::Array1::from_iter((0..rows * cols).map(|i| ((i * 7 + i / 5) % 5) as f32));
        let want: Vec<f64> = (0..cols)
            .map(|j| x.iter().skip(j).step_by(cols).map(|&v| v as f64).sum())
            .collect();
        let t = Tensor::from_array(ctx, "x", &x).unwrap();
        let got = col_sum_raw(&t, cols).unwrap().to_array().unwrap();
        let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
        assert_eq!(got, want, "{}", ctx.describe());
        // A tensor that is not whole rows is refused.
        assert!(col_sum_raw(&t, 3).is_err());
    }
}
