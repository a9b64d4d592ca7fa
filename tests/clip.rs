//! Gradient clipping, by value and by global norm, on the CPU (against the definitions)
//! and the GPU (against the CPU on both backends, the same bits run to run), bad input.

mod common;

use common::gpu::{ctx, fresh, gl_ctx};
use common::NumpyRng;
use ndarray::Array1;
use wgpu_rnn::cpu::{clip_grad_norm, clip_grad_value};
use wgpu_rnn::gpu::{self, Tensor};
use wgpu_rnn::Error;

/// Gradient-like vectors of the given sizes (some spanning several 4096-element chunks).
fn grads(sizes: &[usize], seed: u32, scale: f64) -> Vec<Array1<f64>> {
    let mut rng = NumpyRng::new(seed);
    sizes.iter().map(|&n| rng.randn(n) * scale).collect()
}

#[test]
fn cpu_clipping_matches_the_definitions() {
    for (scale, max_norm) in [(1.0, 5.0), (0.01, 5.0)] {
        let mut g = grads(&[3, 5000, 1, 9000], 1, scale);
        let want: f64 = g
            .iter()
            .flat_map(|a| a.iter())
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        let before = g.clone();
        let mut views: Vec<&mut [f64]> = g.iter_mut().map(|a| a.as_slice_mut().unwrap()).collect();
        let norm = clip_grad_norm(&mut views, max_norm).unwrap();
        assert!((norm - want).abs() < 1e-9 * want, "{norm} vs {want}");
        let after: f64 = g
            .iter()
            .flat_map(|a| a.iter())
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        if want > max_norm {
            assert!((after - max_norm).abs() < 1e-5, "clipped to {after}");
        } else {
            assert_eq!(g, before, "below the limit nothing changes");
        }
    }
    let mut g = grads(&[10, 20], 2, 3.0);
    let want: Vec<Array1<f64>> = g.iter().map(|a| a.mapv(|v| v.clamp(-1.5, 1.5))).collect();
    let mut views: Vec<&mut [f64]> = g.iter_mut().map(|a| a.as_slice_mut().unwrap()).collect();
    clip_grad_value(&mut views, 1.5).unwrap();
    assert_eq!(g, want);
}

#[test]
fn gpu_clipping_matches_cpu_and_repeats_its_bits() {
    for ctx in [ctx(), gl_ctx()].into_iter().flatten() {
        for (scale, max_norm) in [(1.0f64, 5.0f32), (0.001, 5.0)] {
            let g = grads(&[3, 5000, 1, 9000], 3, scale);
            let g32: Vec<Array1<f32>> = g.iter().map(|a| a.mapv(|v| v as f32)).collect();
            let run = || {
                let ts: Vec<Tensor> = g32
                    .iter()
                    .map(|a| Tensor::from_array(ctx, "g", a).unwrap())
                    .collect();
                let refs: Vec<&Tensor> = ts.iter().collect();
                let norm = gpu::clip_grad_norm(&refs, max_norm)
                    .unwrap()
                    .to_array()
                    .unwrap()[[0]];
                let out: Vec<Vec<f32>> = ts
                    .iter()
                    .map(|t| t.to_array().unwrap().iter().copied().collect())
                    .collect();
                (norm, out)
            };
            let (norm, out) = run();
            assert_eq!(run(), (norm, out.clone()), "deterministic");
            let mut cpu = g32.clone();
            let mut views: Vec<&mut [f32]> =
                cpu.iter_mut().map(|a| a.as_slice_mut().unwrap()).collect();
            let want = clip_grad_norm(&mut views, max_norm).unwrap();
            assert!(((norm - want) / want).abs() < 1e-5, "norm {norm} vs {want}");
            for (a, b) in out.iter().zip(&cpu) {
                for (x, y) in a.iter().zip(b.iter()) {
                    assert!((x - y).abs() <= 1e-5 * y.abs().max(1e-3), "{x} vs {y}");
                }
            }
        }
        let g32: Vec<Array1<f32>> = grads(&[10, 5000], 4, 3.0)
            .iter()
            .map(|a| a.mapv(|v| v as f32))
            .collect();
        let ts: Vec<Tensor> = g32
            .iter()
            .map(|a| Tensor::from_array(ctx, "g", a).unwrap())
            .collect();
        gpu::clip_grad_value(&ts.iter().collect::<Vec<_>>(), 1.5).unwrap();
        for (t, a) in ts.iter().zip(&g32) {
            assert_eq!(
                t.to_array().unwrap(),
                a.mapv(|v| v.clamp(-1.5, 1.5)).into_dyn()
            );
        }
    }
}

#[test]
fn bad_clipping_arguments_name_the_argument() {
    let named = |r: Result<(), Error>, arg: &str| match r {
        Err(Error::Invalid { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming {arg}, got {other:?}"),
    };
    let mut v = [1.0f64, 2.0];
    named(
        clip_grad_norm(&mut [&mut v[..]], 0.0).map(|_| ()),
        "max_norm",
    );
    named(
        clip_grad_norm(&mut [&mut v[..]], f64::NAN).map(|_| ()),
        "max_norm",
    );
    named(clip_grad_value(&mut [&mut v[..]], -1.0), "max");
    let Some(ctx) = ctx() else { return };
    named(gpu::clip_grad_norm(&[], 1.0).map(|_| ()), "grads");
    let t = Tensor::from_array(ctx, "t", &Array1::<f32>::ones(3)).unwrap();
    named(gpu::clip_grad_norm(&[&t], -1.0).map(|_| ()), "max_norm");
    named(gpu::clip_grad_value(&[&t], f32::INFINITY), "max");
    if let Some(other) = fresh() {
        let u = Tensor::from_array(&other, "u", &Array1::<f32>::ones(3)).unwrap();
        match gpu::clip_grad_norm(&[&t, &u], 1.0) {
            Err(Error::Invalid { arg: "grads", .. }) => {}
            r => panic!("tensors of two contexts: {r:?}"),
        }
    }
}

/// `zero_grad` clears exactly the tensors given, views included, and nothing around them.
#[test]
fn zero_grad_clears_the_tensors_and_nothing_else() {
    let Some(ctx) = common::gpu::ctx() else {
        return;
    };
    let a = Array1::from_shape_fn(10, |i| i as f32 + 1.0);
    let b = Array1::from_shape_fn(3, |i| -(i as f32) - 1.0);
    let (ta, tb) = (
        Tensor::from_array(ctx, "a", &a).unwrap(),
        Tensor::from_array(ctx, "b", &b).unwrap(),
    );
    wgpu_rnn::gpu::zero_grad(&[&ta, &tb]).unwrap();
    assert!(ta.to_array().unwrap().iter().all(|&v| v == 0.0));
    assert!(tb.to_array().unwrap().iter().all(|&v| v == 0.0));
    wgpu_rnn::gpu::zero_grad(&[]).unwrap();
    // A view inside a larger buffer: the network's `weight_hh_l0` within its flat
    // parameters; only its range is cleared.
    let config = wgpu_rnn::net::NetConfig::new(wgpu_rnn::Cell::Lstm, 3, 4);
    let p = wgpu_rnn::net::NetParams::<f32>::init(config, 1).unwrap();
    let net = gpu::Network::new(ctx, &p).unwrap();
    let before = net.parameters()[0].to_array().unwrap();
    let named = net.named_parameters();
    let (name, view) = &named[1];
    assert_eq!(name, "weight_hh_l0");
    gpu::zero_grad(&[view]).unwrap();
    let after = net.parameters()[0].to_array().unwrap();
    let (start, n) = (named[0].1.len(), view.len());
    for (i, (x, y)) in before.iter().zip(after.iter()).enumerate() {
        let want = if (start..start + n).contains(&i) {
            0.0
        } else {
            *x
        };
        assert_eq!(*y, want, "element {i}");
    }
}
