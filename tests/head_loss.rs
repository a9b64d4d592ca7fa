//! The output head fused with softmax cross-entropy (`cpu::head_loss`,
//! `gpu::GpuHead::loss`): the loss against its definition written out, the gradients
//! against f64 central differences, logits of ±1e4, the GPU against the CPU on both
//! backends (mean and sum, an ignore index, odd sizes), bad targets.

mod common;

use common::gpu::{ctx, gl_ctx};
use common::NumpyRng;
use ndarray::{Array1, Array2, Array3};
use wgpu_rnn::cpu::{head_loss, head_loss_backward, Reduction};
use wgpu_rnn::gpu::{GpuHead, Tensor};
use wgpu_rnn::{Error, Head};

/// A head of `c` classes over `h` units, `h [T, B, H]` and targets with every third
/// position ignored (class `c`, the ignore index) when `ignore`.
fn problem(
    t: usize,
    b: usize,
    hs: usize,
    c: usize,
    seed: u32,
    ignore: bool,
) -> (Head<f64>, Array3<f64>, Array2<usize>) {
    let mut rng = NumpyRng::new(seed);
    let head = Head::new(rng.randn((c, hs)), rng.randn(c)).unwrap();
    let h = rng.randn((t, b, hs));
    let targets = Array2::from_shape_fn((t, b), |(i, j)| {
        if ignore && (i * b + j) % 3 == 1 {
            c
        } else {
            (i * 7 + j * 3) % c
        }
    });
    (head, h, targets)
}

/// The loss from its definition: `−ln softmax(z)[k]` summed over counted positions.
fn by_hand(
    head: &Head<f64>,
    h: &Array3<f64>,
    targets: &Array2<usize>,
    ignore: usize,
) -> (f64, usize) {
    let mut total = 0.0;
    let mut counted = 0;
    for ((i, j), &k) in targets.indexed_iter() {
        if k == ignore {
            continue;
        }
        let z: Vec<f64> = (0..head.classes())
            .map(|q| head.b_y[q] + head.w_y.row(q).dot(&h.slice(ndarray::s![i, j, ..])))
            .collect();
        let sum: f64 = z.iter().map(|v| v.exp()).sum();
        total -= (z[k].exp() / sum).ln();
        counted += 1;
    }
    (total, counted)
}

#[test]
fn loss_matches_its_definition() {
    for ignore in [false, true] {
        let (head, h, targets) = problem(3, 4, 5, 6, 1, ignore);
        let (total, counted) = by_hand(&head, &h, &targets, 6);
        let ig = ignore.then_some(6);
        let sum = head_loss(&head, h.view(), targets.view(), ig, Reduction::Sum).unwrap();
        let mean = head_loss(&head, h.view(), targets.view(), ig, Reduction::Mean).unwrap();
        assert_eq!(sum.counted, counted);
        assert!(
            (sum.loss - total).abs() < 1e-12,
            "sum {} vs {total}",
            sum.loss
        );
        assert!((mean.loss - total / counted as f64).abs() < 1e-12);
        // The probabilities are the head's softmax.
        let y = wgpu_rnn::cpu::head_forward(&head, h.view()).unwrap();
        assert!((&y - &sum.probs).iter().all(|v| v.abs() < 1e-15));
    }
}

#[test]
fn gradients_match_finite_differences() {
    for (ignore, reduction) in [
        (false, Reduction::Mean),
        (true, Reduction::Sum),
        (true, Reduction::Mean),
    ] {
        let (head, h, targets) = problem(2, 3, 4, 5, 2, ignore);
        let ig = ignore.then_some(5);
        let loss = |head: &Head<f64>, h: &Array3<f64>| {
            head_loss(head, h.view(), targets.view(), ig, reduction)
                .unwrap()
                .loss
        };
        let out = head_loss(&head, h.view(), targets.view(), ig, reduction).unwrap();
        let g = head_loss_backward(&head, h.view(), targets.view(), ig, reduction, &out).unwrap();
        let eps = 1e-6;
        let check = |name: &str, analytic: Vec<f64>, f: &dyn Fn(f64, usize) -> f64| {
            for (k, a) in analytic.iter().enumerate() {
                let n = (f(eps, k) - f(-eps, k)) / (2.0 * eps);
                assert!(
                    (a - n).abs() < 1e-7,
                    "{reduction:?} {name}[{k}]: {a} vs {n}"
                );
            }
        };
        check("h", g.dh.iter().copied().collect(), &|e, k| {
            let mut h2 = h.clone();
            h2.as_slice_mut().unwrap()[k] += e;
            loss(&head, &h2)
        });
        check("w_y", g.dw_y.iter().copied().collect(), &|e, k| {
            let mut hd = head.clone();
            hd.w_y.as_slice_mut().unwrap()[k] += e;
            loss(&hd, &h)
        });
        check("b_y", g.db_y.to_vec(), &|e, k| {
            let mut hd = head.clone();
            hd.b_y[k] += e;
            loss(&hd, &h)
        });
    }
}

#[test]
fn huge_logits_stay_finite_and_exact() {
    // Logits of ±1e4: a softmax without the shift would overflow, ln(p) would be −inf.
    let head = Head::new(
        Array2::from_shape_vec((3, 1), vec![1e4, -1e4, 0.0]).unwrap(),
        Array1::zeros(3),
    )
    .unwrap();
    let h = Array3::from_elem((1, 1, 1), 1.0);
    for (k, want) in [(0usize, 0.0f64), (1, 2e4), (2, 1e4)] {
        let t = Array2::from_elem((1, 1), k);
        let out = head_loss(&head, h.view(), t.view(), None, Reduction::Sum).unwrap();
        assert!(
            (out.loss - want).abs() <= 1e-9 * want.max(1.0),
            "class {k}: {}",
            out.loss
        );
        let h32 = h.mapv(|v| v as f32);
        let out32 = head_loss(
            &head.cast::<f32>(),
            h32.view(),
            t.view(),
            None,
            Reduction::Sum,
        )
        .unwrap();
        assert!(out32.loss.is_finite() && (out32.loss as f64 - want).abs() <= 1e-3 * want.max(1.0));
        if let Some(ctx) = ctx() {
            let gh = GpuHead::new(ctx, &head.cast::<f32>()).unwrap();
            let x = Tensor::from_array(ctx, "h", &h32).unwrap();
            let g = gh.loss(&x, t.view(), None, Reduction::Sum).unwrap();
            let l = g.loss.to_array().unwrap()[[0]] as f64;
            assert!(
                l.is_finite() && (l - want).abs() <= 1e-3 * want.max(1.0),
                "GPU class {k}: {l}"
            );
        }
    }
}

/// `max |got − want| / max(1, max |want|)`, a NaN counting as infinite.
fn rel(got: &ndarray::ArrayD<f32>, want: &[f64]) -> f64 {
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0.0f64, |m, (&a, b)| {
        let d = (a as f64 - b).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    }) / scale
}

#[test]
fn gpu_matches_cpu_on_both_backends() {
    for ctx in [ctx(), gl_ctx()].into_iter().flatten() {
        for (k, &(t, b, hs, c, ignore, reduction)) in [
            (3, 5, 17, 7, false, Reduction::Mean),
            (1, 1, 1, 1, false, Reduction::Sum),
            (4, 9, 33, 130, true, Reduction::Mean),
            (2, 3, 5, 3, true, Reduction::Sum),
        ]
        .iter()
        .enumerate()
        {
            let (head, h, targets) = problem(t, b, hs, c, 10 + k as u32, ignore);
            let ig = ignore.then_some(c);
            let out = head_loss(&head, h.view(), targets.view(), ig, reduction).unwrap();
            let want =
                head_loss_backward(&head, h.view(), targets.view(), ig, reduction, &out).unwrap();
            let gh = GpuHead::new(ctx, &head.cast::<f32>()).unwrap();
            let x = Tensor::from_array(ctx, "h", &h.mapv(|v| v as f32)).unwrap();
            let g = gh.loss(&x, targets.view(), ig, reduction).unwrap();
            let label = format!("T={t} B={b} H={hs} C={c} ignore={ignore} {reduction:?}");
            assert_eq!(g.counted, out.counted, "{label}");
            assert!(
                rel(&g.loss.to_array().unwrap(), &[out.loss]) < 2e-4,
                "{label} loss"
            );
            assert!(
                rel(&g.dh.to_array().unwrap(), want.dh.as_slice().unwrap()) < 2e-4,
                "{label} dh"
            );
            assert!(
                rel(&g.dw_y.to_array().unwrap(), want.dw_y.as_slice().unwrap()) < 2e-4,
                "{label} dw_y"
            );
            assert!(
                rel(&g.db_y.to_array().unwrap(), want.db_y.as_slice().unwrap()) < 2e-4,
                "{label} db_y"
            );
        }
    }
}

#[test]
fn bad_targets_name_the_argument() {
    let (head, h, mut targets) = problem(2, 2, 3, 4, 5, false);
    let named = |r: Result<f64, Error>| match r {
        Err(Error::Shape { arg: "targets", .. }) | Err(Error::Invalid { arg: "targets", .. }) => {}
        other => panic!("expected an error naming targets, got {other:?}"),
    };
    let short = Array2::<usize>::zeros((2, 3));
    named(head_loss(&head, h.view(), short.view(), None, Reduction::Mean).map(|o| o.loss));
    targets[[1, 1]] = 4;
    named(head_loss(&head, h.view(), targets.view(), None, Reduction::Mean).map(|o| o.loss));
    if let Some(ctx) = ctx() {
        let gh = GpuHead::new(ctx, &head.cast::<f32>()).unwrap();
        let x = Tensor::from_array(ctx, "h", &h.mapv(|v| v as f32)).unwrap();
        named(
            gh.loss(&x, targets.view(), None, Reduction::Mean)
                .map(|_| 0.0),
        );
    }
    // The ignore index may be any value, a class among them.
    targets[[1, 1]] = 2;
    let out = head_loss(&head, h.view(), targets.view(), Some(2), Reduction::Mean).unwrap();
    assert_eq!(out.counted, targets.iter().filter(|&&k| k != 2).count());
}
