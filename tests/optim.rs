//! Optimizers over (parameter, gradient) pairs: the CPU path against PyTorch's formulas
//! written out, the GPU against the CPU on both backends (three steps, each kind), bad
//! hyper-parameters and mismatched lists.

mod common;

use common::gpu::{ctx, gl_ctx};
use common::NumpyRng;
use ndarray::Array1;
use wgpu_rnn::cpu::{optim_step, OptimState, Optimizer};
use wgpu_rnn::gpu::{Optim, Tensor};
use wgpu_rnn::Error;

fn kinds() -> Vec<Optimizer> {
    vec![
        Optimizer::Sgd { lr: 0.1 },
        Optimizer::Momentum {
            lr: 0.1,
            momentum: 0.9,
        },
        Optimizer::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        Optimizer::adamw(0.01),
    ]
}

/// PyTorch's update for one scalar parameter over `grads`, written out.
fn by_hand(opt: &Optimizer, mut p: f64, grads: &[f64]) -> f64 {
    let (mut m, mut v) = (0.0, 0.0);
    for (k, &g0) in grads.iter().enumerate() {
        let t = k as i32 + 1;
        match *opt {
            Optimizer::Sgd { lr } => p -= lr as f64 * g0,
            Optimizer::Momentum { lr, momentum } => {
                m = if t == 1 { g0 } else { momentum as f64 * m + g0 };
                p -= lr as f64 * m;
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Optimizer::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let (lr, b1, b2, eps, wd) = (
                    lr as f64,
                    beta1 as f64,
                    beta2 as f64,
                    eps as f64,
                    weight_decay as f64,
                );
                let mut g = g0;
                if matches!(opt, Optimizer::AdamW { .. }) {
                    p *= 1.0 - lr * wd;
                } else {
                    g += wd * p;
                }
                m = b1 * m + (1.0 - b1) * g;
                v = b2 * v + (1.0 - b2) * g * g;
                let mh = m / (1.0 - b1.powi(t));
                let vh = v / (1.0 - b2.powi(t));
                p -= lr * mh / (vh.sqrt() + eps);
            }
        }
    }
    p
}

#[test]
fn cpu_steps_follow_pytorch_formulas() {
    for opt in kinds() {
        let mut rng = NumpyRng::new(1);
        let p0 = rng.randn(4);
        let gs: Vec<Array1<f64>> = (0..3).map(|_| rng.randn(4)).collect();
        let mut p = p0.clone();
        let mut st = OptimState::default();
        for g in &gs {
            optim_step(
                &opt,
                &mut st,
                &mut [p.as_slice_mut().unwrap()],
                &[g.as_slice().unwrap()],
            )
            .unwrap();
        }
        for i in 0..4 {
            let want = by_hand(&opt, p0[i], &gs.iter().map(|g| g[i]).collect::<Vec<_>>());
            assert!(
                (p[i] - want).abs() < 1e-12,
                "{opt:?}[{i}]: {} vs {want}",
                p[i]
            );
        }
        assert_eq!(st.step, 3);
    }
}

#[test]
fn gpu_steps_match_cpu_on_both_backends() {
    for ctx in [ctx(), gl_ctx()].into_iter().flatten() {
        for opt in kinds() {
            let mut rng = NumpyRng::new(2);
            let sizes = [5usize, 130];
            let p0: Vec<Array1<f32>> = sizes
                .iter()
                .map(|&n| rng.randn(n).mapv(|v| v as f32))
                .collect();
            let gs: Vec<Vec<Array1<f32>>> = (0..3)
                .map(|_| {
                    sizes
                        .iter()
                        .map(|&n| rng.randn(n).mapv(|v| v as f32))
                        .collect()
                })
                .collect();
            let mut cpu = p0.clone();
            let mut st = OptimState::default();
            let params: Vec<Tensor> = p0
                .iter()
                .map(|a| Tensor::from_array(ctx, "p", a).unwrap())
                .collect();
            let gpu = Optim::new(ctx, opt).unwrap();
            for step in &gs {
                let mut views: Vec<&mut [f32]> =
                    cpu.iter_mut().map(|a| a.as_slice_mut().unwrap()).collect();
                let gviews: Vec<&[f32]> = step.iter().map(|a| a.as_slice().unwrap()).collect();
                optim_step(&opt, &mut st, &mut views, &gviews).unwrap();
                let gt: Vec<Tensor> = step
                    .iter()
                    .map(|a| Tensor::from_array(ctx, "g", a).unwrap())
                    .collect();
                gpu.step(
                    &params.iter().collect::<Vec<_>>(),
                    &gt.iter().collect::<Vec<_>>(),
                )
                .unwrap();
            }
            assert_eq!(gpu.steps(), 3);
            for (t, want) in params.iter().zip(&cpu) {
                for (a, b) in t.to_array().unwrap().iter().zip(want.iter()) {
                    assert!(
                        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                        "{opt:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn bad_optimizer_arguments_name_the_argument() {
    let named = |r: Result<(), Error>, arg: &str| match r {
        Err(Error::Invalid { arg: a, .. }) | Err(Error::Shape { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming {arg}, got {other:?}"),
    };
    for bad in [
        Optimizer::Sgd { lr: 0.0 },
        Optimizer::Momentum {
            lr: 0.1,
            momentum: -1.0,
        },
        Optimizer::Adam {
            lr: 0.1,
            beta1: 1.0,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        Optimizer::AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: f32::NAN,
            weight_decay: 0.01,
        },
    ] {
        named(bad.check(), "optimizer");
    }
    let mut st = OptimState::<f64>::default();
    let mut p = [1.0f64, 2.0];
    named(
        optim_step(
            &Optimizer::Sgd { lr: 0.1 },
            &mut st,
            &mut [&mut p[..]],
            &[&[1.0][..]],
        ),
        "grads",
    );
    let Some(ctx) = ctx() else { return };
    let o = Optim::new(ctx, Optimizer::adam(0.1)).unwrap();
    let a = Tensor::from_array(ctx, "a", &Array1::<f32>::ones(3)).unwrap();
    let b = Tensor::from_array(ctx, "b", &Array1::<f32>::ones(4)).unwrap();
    named(o.step(&[&a], &[&b]), "grads");
    named(o.step(&[&a], &[]), "grads");
    let g = Tensor::from_array(ctx, "g", &Array1::<f32>::ones(3)).unwrap();
    o.step(&[&a], &[&g]).unwrap();
    let g4 = Tensor::from_array(ctx, "g", &Array1::<f32>::ones(4)).unwrap();
    named(o.step(&[&b], &[&g4]), "params");
}
