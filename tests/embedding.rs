//! Token input: the embedding lookup and its backward on the CPU (against their
//! definitions) and the GPU (against the CPU on both backends, the backward's bits the
//! same run to run), bad ids.

mod common;

use common::gpu::{ctx, gl_ctx};
use common::NumpyRng;
use ndarray::Array2;
use wgpu_rnn::cpu::{embedding, embedding_backward};
use wgpu_rnn::gpu::{Embedding, Tensor};
use wgpu_rnn::Error;

fn ids(t: usize, b: usize, vocab: usize) -> Array2<usize> {
    // Skewed: some tokens often, some never.
    Array2::from_shape_fn((t, b), |(i, j)| {
        ((i * 5 + j * 3) % 7).min(vocab - 1) * (vocab / 7).max(1) % vocab
    })
}

#[test]
fn cpu_lookup_and_backward_match_their_definitions() {
    let mut rng = NumpyRng::new(4);
    let w = rng.randn((11, 3));
    let ids = ids(4, 5, 11);
    let out = embedding(w.view(), ids.view()).unwrap();
    for ((i, j), &v) in ids.indexed_iter() {
        assert_eq!(out.slice(ndarray::s![i, j, ..]), w.row(v));
    }
    let d = rng.randn((4, 5, 3));
    let dw = embedding_backward(11, ids.view(), d.view()).unwrap();
    for v in 0..11 {
        for c in 0..3 {
            let want: f64 = ids
                .indexed_iter()
                .filter(|(_, &x)| x == v)
                .map(|((i, j), _)| d[[i, j, c]])
                .sum();
            assert!((dw[[v, c]] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn gpu_matches_cpu_and_repeats_its_bits() {
    for ctx in [ctx(), gl_ctx()].into_iter().flatten() {
        for &(t, b, vocab, e) in &[(4, 5, 11, 3), (1, 1, 1, 1), (30, 17, 130, 33)] {
            let mut rng = NumpyRng::new(vocab as u32);
            let w = rng.randn((vocab, e)).mapv(|v| v as f32);
            let ids = ids(t, b, vocab);
            let d = rng.randn((t, b, e)).mapv(|v| v as f32);
            let emb = Embedding::new(ctx, w.view()).unwrap();
            let got = emb.forward(ids.view()).unwrap().to_array().unwrap();
            let want = embedding(w.view(), ids.view()).unwrap();
            assert_eq!(got, want.into_dyn(), "lookup T={t} B={b} V={vocab}");
            let dt = Tensor::from_array(ctx, "d", &d).unwrap();
            let g1 = emb.backward(ids.view(), &dt).unwrap().to_array().unwrap();
            let g2 = emb.backward(ids.view(), &dt).unwrap().to_array().unwrap();
            assert_eq!(g1, g2, "deterministic");
            let want = embedding_backward(vocab, ids.view(), d.mapv(|v| v as f64).view()).unwrap();
            let err = g1.iter().zip(want.iter()).fold(0f64, |m, (&a, &b)| {
                let x = (a as f64 - b).abs();
                if x.is_nan() {
                    f64::INFINITY
                } else {
                    m.max(x)
                }
            });
            assert!(err < 1e-4, "backward T={t} B={b} V={vocab}: {err}");
        }
    }
}

#[test]
fn bad_ids_name_the_argument() {
    let w = Array2::<f64>::zeros((5, 2));
    let named = |r: Result<(), Error>, arg: &str| match r {
        Err(Error::Shape { arg: a, .. }) | Err(Error::Invalid { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming {arg}, got {other:?}"),
    };
    let bad = Array2::from_elem((2, 2), 5usize);
    named(embedding(w.view(), bad.view()).map(|_| ()), "ids");
    named(
        embedding(w.view(), Array2::<usize>::zeros((0, 2)).view()).map(|_| ()),
        "ids",
    );
    named(
        embedding(Array2::<f64>::zeros((0, 2)).view(), bad.view()).map(|_| ()),
        "weight",
    );
    let ok = Array2::from_elem((2, 2), 1usize);
    let d = ndarray::Array3::<f64>::zeros((2, 3, 2));
    named(
        embedding_backward(5, ok.view(), d.view()).map(|_| ()),
        "d_out",
    );
    if let Some(ctx) = ctx() {
        let emb = Embedding::new(ctx, w.mapv(|v| v as f32).view()).unwrap();
        named(emb.forward(bad.view()).map(|_| ()), "ids");
        let dt = Tensor::zeros(ctx, "d", &[2, 3, 2]).unwrap();
        named(emb.backward(ok.view(), &dt).map(|_| ()), "d_out");
    }
}

/// A token at 70000 positions of one batch: its gradient row sums more than llvmpipe's
/// 65535 loop iterations, so the kernel takes it in slices (checked on both backends).
#[test]
fn a_frequent_token_is_summed_whole() {
    for ctx in [ctx(), gl_ctx()].into_iter().flatten() {
        let (t, b) = (70, 1000);
        let ids = Array2::from_shape_fn((t, b), |(i, j)| usize::from((i + j) % 50 == 0));
        let mut rng = NumpyRng::new(9);
        let d = rng.uniform_array((t, b, 2), -1.0, 1.0).mapv(|v| v as f32);
        let emb = Embedding::new(ctx, Array2::<f32>::zeros((2, 2)).view()).unwrap();
        let dt = Tensor::from_array(ctx, "d", &d).unwrap();
        let got = emb.backward(ids.view(), &dt).unwrap().to_array().unwrap();
        let want = embedding_backward(2, ids.view(), d.mapv(|v| v as f64).view()).unwrap();
        for (a, w) in got.iter().zip(want.iter()) {
            assert!((*a as f64 - w).abs() < 1e-2, "{a} vs {w}");
        }
    }
}
