//! The language model trained end to end: on a tiny corpus the loss falls well under
//! its initial `ln V` on the CPU path and on the device; the device's parameters after
//! K steps are the CPU path's; a checkpoint saved, loaded and trained on equals an
//! uninterrupted run; sampling is seeded, greedy at temperature 0, the same on both.

mod common;

use common::gpu::ctx;
use wgpu_rnn::cpu::{OptimState, Optimizer};
use wgpu_rnn::lm::{
    pick, Batches, Checkpoint, Corpus, CpuLm, GpuLm, LmConfig, LmParams, SampleOptions,
};
use wgpu_rnn::Cell;

/// A tiny corpus: ten names, one per line.
const TINY: &str = "anna\nbella\nclara\ndora\nemma\nfiona\ngina\nhanna\nilse\njana\n";

fn setup(cell: Cell, seed: u64) -> (Corpus, LmParams) {
    let corpus = Corpus::new(TINY).unwrap();
    let config = LmConfig::new(cell, corpus.chars.len(), 8, 16, 1);
    (corpus, LmParams::init(config, seed).unwrap())
}

fn adam() -> Optimizer {
    Optimizer::adam(0.02)
}

/// Runs `steps` chunks of `batches` through `step`, resetting the carried state when the
/// streams wrap; returns the losses.
fn train(
    batches: &mut Batches,
    steps: usize,
    mut step: impl FnMut(&ndarray::Array2<usize>, &ndarray::Array2<usize>, bool) -> f32,
) -> Vec<f32> {
    (0..steps)
        .map(|_| {
            let (ids, targets, wrapped) = batches.next_chunk();
            step(&ids, &targets, wrapped)
        })
        .collect()
}

/// The largest `|a − b| / max(1, |b|)` over two parameter sets' tensors.
fn param_err(a: &LmParams, b: &LmParams) -> f64 {
    a.named()
        .iter()
        .zip(b.named())
        .flat_map(|(x, y)| {
            x.2.iter()
                .zip(y.2)
                .map(|(p, q)| {
                    let d = ((p - q) as f64).abs() / (q as f64).abs().max(1.0);
                    if d.is_nan() {
                        f64::INFINITY
                    } else {
                        d
                    }
                })
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max)
}

#[test]
fn cpu_and_gpu_learn_the_tiny_corpus_alike() {
    for cell in [Cell::Lstm, Cell::GRU, Cell::Rnn] {
        let (corpus, p) = setup(cell, 7);
        let ln_v = (corpus.chars.len() as f32).ln();
        let mut cpu_lm = CpuLm::new(p.clone(), adam(), Some(1.0), OptimState::default()).unwrap();
        let mut batches = Batches::new(&corpus.tokens, 8, 4).unwrap();
        let cpu_losses = train(&mut batches, 200, |ids, t, wrapped| {
            if wrapped {
                cpu_lm.reset_state();
            }
            cpu_lm.step(ids.view(), t.view()).unwrap()
        });
        let tail = |l: &[f32]| l[l.len() - 10..].iter().sum::<f32>() / 10.0;
        assert!(
            (cpu_losses[0] - ln_v).abs() < 0.5,
            "{cell:?}: initial loss {} vs ln V {ln_v}",
            cpu_losses[0]
        );
        assert!(
            tail(&cpu_losses) < 0.35 * ln_v,
            "{cell:?} CPU: final loss {} (ln V = {ln_v})",
            tail(&cpu_losses)
        );
        let Some(ctx) = ctx() else { continue };
        let mut gpu_lm = GpuLm::new(ctx, &p, adam(), Some(1.0), &OptimState::default()).unwrap();
        let mut batches = Batches::new(&corpus.tokens, 8, 4).unwrap();
        let mut cpu_k = CpuLm::new(p.clone(), adam(), Some(1.0), OptimState::default()).unwrap();
        // The first K steps: the same parameters as the CPU path's.
        let k = 5;
        let gpu_losses =
            train(&mut batches, 200, |ids, t, wrapped| {
                if wrapped {
                    gpu_lm.reset_state();
                    cpu_k.reset_state();
                }
                let loss = gpu_lm.step(ids.view(), t.view()).unwrap();
                let got = loss.to_array().unwrap()[0];
                if cpu_k.state.step < k {
                    let want = cpu_k.step(ids.view(), t.view()).unwrap();
                    assert!((got - want).abs() < 1e-4, "{cell:?}: loss {got} vs {want}");
                    if cpu_k.state.step == k {
                        let err = param_err(&gpu_lm.params().unwrap(), &cpu_k.params);
                        eprintln!("{cell:?}: parameters after {k} steps, GPU vs CPU: {err:e}");
                        assert!(err < 2e-4, "{cell:?}: parameters after {k} steps: {err:e}");
                        // The optimizer's moments, tensor by tensor in the parameter order.
                        let (gs, cs) = (gpu_lm.optim_state().unwrap(), &cpu_k.state);
                        assert_eq!(gs.step, k);
                        assert_eq!(gs.m.len(), cs.m.len());
                        for (which, g, c) in [("m", &gs.m, &cs.m), ("v", &gs.v, &cs.v)] {
                            for (t, (a, b)) in g.iter().zip(c).enumerate() {
                                assert_eq!(a.len(), b.len(), "{cell:?} {which}[{t}]");
                                let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                                let err = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(
                                    0f32,
                                    |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
                                );
                                assert!(
                                    err <= 1e-3 * scale,
                                    "{cell:?} {which}[{t}]: {err:e} of {scale:e}"
                                );
                            }
                        }
                    }
                }
                got
            });
        eprintln!(
            "{cell:?}: ln V {ln_v:.3}, final loss CPU {:.3}, GPU {:.3}",
            tail(&cpu_losses),
            tail(&gpu_losses)
        );
        assert!(
            tail(&gpu_losses) < 0.35 * ln_v,
            "{cell:?} GPU: final loss {} (ln V = {ln_v})",
            tail(&gpu_losses)
        );
    }
}

/// Train 6 steps, checkpoint, load, train 6 more: the same parameters, optimizer state
/// and losses as 12 uninterrupted steps (the carried state is in the checkpoint).
#[test]
fn a_resumed_checkpoint_equals_an_uninterrupted_run() {
    let dir = std::env::temp_dir().join(format!("wgpu-rnn-lm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (corpus, p) = setup(Cell::Lstm, 3);
    let opt = Optimizer::adamw(0.01);
    // CPU.
    let mut whole = CpuLm::new(p.clone(), opt, Some(1.0), OptimState::default()).unwrap();
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    let want = train(&mut b, 12, |i, t, _| {
        whole.step(i.view(), t.view()).unwrap()
    });
    let mut first = CpuLm::new(p.clone(), opt, Some(1.0), OptimState::default()).unwrap();
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    let mut got = train(&mut b, 6, |i, t, _| first.step(i.view(), t.view()).unwrap());
    let path = dir.join("cpu.safetensors");
    Checkpoint {
        params: first.params.clone(),
        optim: first.state.clone(),
        carry: first.carry(),
        meta: Default::default(),
    }
    .save(&path)
    .unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.params, first.params);
    let mut resumed = CpuLm::new(ck.params, opt, Some(1.0), ck.optim).unwrap();
    resumed.set_carry(ck.carry);
    got.extend(train(&mut b, 6, |i, t, _| {
        resumed.step(i.view(), t.view()).unwrap()
    }));
    assert_eq!(got, want, "CPU losses");
    assert_eq!(resumed.params, whole.params, "CPU parameters");
    // GPU: the device is deterministic, so resuming gives the same bits too.
    let Some(ctx) = ctx() else { return };
    let read = |lm: &mut GpuLm, b: &mut Batches, n| {
        train(b, n, |i, t, _| {
            lm.step(i.view(), t.view()).unwrap().to_array().unwrap()[0]
        })
    };
    let new = |p: &LmParams, s: &OptimState<f32>| GpuLm::new(ctx, p, opt, Some(1.0), s).unwrap();
    let mut whole = new(&p, &OptimState::default());
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    let want = read(&mut whole, &mut b, 12);
    let mut first = new(&p, &OptimState::default());
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    let mut got = read(&mut first, &mut b, 6);
    let path = dir.join("gpu.safetensors");
    Checkpoint {
        params: first.params().unwrap(),
        optim: first.optim_state().unwrap(),
        carry: first.carry().unwrap(),
        meta: Default::default(),
    }
    .save(&path)
    .unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    let mut resumed = new(&ck.params, &ck.optim);
    resumed.set_carry(ck.carry.as_ref()).unwrap();
    got.extend(read(&mut resumed, &mut b, 6));
    assert_eq!(got, want, "GPU losses");
    assert_eq!(
        resumed.params().unwrap(),
        whole.params().unwrap(),
        "GPU parameters"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pick_follows_temperature_and_top_k() {
    let p = [0.1f32, 0.5, 0.15, 0.25];
    // Temperature 0 and top-1: the most likely, whatever u.
    for u in [0.0, 0.3, 0.999] {
        assert_eq!(pick(&p, 0.0, None, u), Some(1));
        assert_eq!(pick(&p, 1.0, Some(1), u), Some(1));
    }
    // Temperature 1: the inverse CDF of p itself.
    let cdf = [0.1, 0.6, 0.75, 1.0];
    for (i, u) in [0.05, 0.3, 0.7, 0.9].into_iter().enumerate() {
        assert_eq!(pick(&p, 1.0, None, u), Some(i), "u = {u}");
        assert!(u < cdf[i]);
    }
    // Top-2 keeps tokens 1 and 3, weighted 0.5 : 0.25.
    assert_eq!(pick(&p, 1.0, Some(2), 0.6), Some(1));
    assert_eq!(pick(&p, 1.0, Some(2), 0.7), Some(3));
    // top_k past the vocabulary keeps everything.
    assert_eq!(pick(&p, 1.0, Some(100), 0.9), Some(3));
    // A low temperature sharpens: at 0.1 token 1 has nearly all the weight.
    assert_eq!(pick(&p, 0.1, None, 0.99), Some(1));
    // A high one flattens toward uniform.
    assert_eq!(pick(&p, 100.0, None, 0.26), Some(1));
    // Entries that are not finite or not positive weigh nothing; nothing left: None.
    let q = [f32::NAN, 0.2, f32::INFINITY, 0.0, 0.6];
    assert_eq!(pick(&q, 0.0, None, 0.5), Some(4));
    for u in [0.0, 0.5, 0.999] {
        let got = pick(&q, 1.0, None, u).unwrap();
        assert!(got == 1 || got == 4, "u = {u}: {got}");
    }
    assert_eq!(pick(&[], 1.0, None, 0.5), None);
    assert_eq!(pick(&[f32::NAN, 0.0], 1.0, None, 0.5), None);
}

#[test]
fn sampling_is_seeded_greedy_at_zero_temperature_and_alike_on_the_device() {
    let (corpus, p) = setup(Cell::GRU, 5);
    let lm = CpuLm::new(p.clone(), adam(), None, OptimState::default()).unwrap();
    let nl = corpus.token('\n');
    let opts = SampleOptions {
        max_len: 12,
        stop: nl,
        seed: 9,
        ..Default::default()
    };
    let a = lm.sample(nl.unwrap(), None, None, &opts).unwrap();
    assert_eq!(a, lm.sample(nl.unwrap(), None, None, &opts).unwrap());
    assert!(!a.is_empty() && a.len() <= 12);
    let others: Vec<_> = (10..20)
        .map(|seed| {
            let o = SampleOptions { seed, ..opts };
            lm.sample(nl.unwrap(), None, None, &o).unwrap()
        })
        .collect();
    assert!(others.iter().any(|o| *o != a), "every seed drew {a:?}");
    // Greedy: each token is the most likely after the ones before, whatever the seed.
    let greedy = SampleOptions {
        temperature: 0.0,
        ..opts
    };
    let g = lm.sample(nl.unwrap(), None, None, &greedy).unwrap();
    assert_eq!(
        g,
        lm.sample(
            nl.unwrap(),
            None,
            None,
            &SampleOptions { seed: 1, ..greedy }
        )
        .unwrap()
    );
    let mut prefix = vec![nl.unwrap()];
    for &tok in &g {
        let ids = ndarray::Array2::from_shape_vec((prefix.len(), 1), prefix.clone()).unwrap();
        let x = wgpu_rnn::cpu::embedding(p.embedding.view(), ids.view()).unwrap();
        let out = wgpu_rnn::net::cpu::forward(&p.net, x.view(), None, None, None).unwrap();
        let probs = wgpu_rnn::cpu::head_forward(&p.head, out.output.view()).unwrap();
        let last = probs.slice(ndarray::s![prefix.len() - 1, 0, ..]);
        let best = (0..last.len())
            .max_by(|&i, &j| last[i].total_cmp(&last[j]).then(j.cmp(&i)))
            .unwrap();
        assert_eq!(tok, best, "greedy after {prefix:?}");
        prefix.push(tok);
    }
    // The device samples the same tokens for the same seed.
    let Some(ctx) = ctx() else { return };
    let glm = GpuLm::new(ctx, &p, adam(), None, &OptimState::default()).unwrap();
    assert_eq!(glm.sample(nl.unwrap(), None, None, &opts).unwrap(), a);
    assert_eq!(glm.sample(nl.unwrap(), None, None, &greedy).unwrap(), g);
    // Bad options are errors naming the argument.
    let bad = SampleOptions {
        temperature: -1.0,
        ..opts
    };
    common::expect_err(lm.sample(0, None, None, &bad), "opts");
    common::expect_err(lm.sample(99, None, None, &opts), "start");
    common::expect_err(glm.sample(99, None, None, &opts), "start");
}

/// Dropout between two layers: the device draws the CPU path's masks (seeded by the step
/// count), so the losses and parameters agree; a checkpoint keeps the dropout.
#[test]
fn dropout_trains_alike_and_survives_a_checkpoint() {
    let corpus = Corpus::new(TINY).unwrap();
    let mut config = LmConfig::new(Cell::Lstm, corpus.chars.len(), 6, 7, 2);
    config.net.dropout = 0.3;
    let p = LmParams::init(config, 11).unwrap();
    let mut cpu_lm = CpuLm::new(p.clone(), adam(), Some(1.0), OptimState::default()).unwrap();
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    let want = train(&mut b, 4, |i, t, _| {
        cpu_lm.step(i.view(), t.view()).unwrap()
    });
    let dir = std::env::temp_dir().join(format!("wgpu-rnn-dropout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ck.safetensors");
    Checkpoint {
        params: cpu_lm.params.clone(),
        optim: cpu_lm.state.clone(),
        carry: cpu_lm.carry(),
        meta: Default::default(),
    }
    .save(&path)
    .unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(
        ck.params, cpu_lm.params,
        "the config with its dropout, the weights"
    );
    std::fs::remove_dir_all(&dir).ok();
    let Some(ctx) = ctx() else { return };
    let mut gpu_lm = GpuLm::new(ctx, &p, adam(), Some(1.0), &OptimState::default()).unwrap();
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    let got = train(&mut b, 4, |i, t, _| {
        gpu_lm.step(i.view(), t.view()).unwrap().to_array().unwrap()[0]
    });
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-4, "step {k}: {g} vs {w}");
    }
    let err = param_err(&gpu_lm.params().unwrap(), &cpu_lm.params);
    assert!(err < 2e-4, "parameters: {err:e}");
}

/// A checkpoint of the CPU path resumes on the device: the same run continues.
#[test]
fn a_cpu_checkpoint_resumes_on_the_device() {
    let Some(ctx) = ctx() else { return };
    let (corpus, p) = setup(Cell::GRU, 4);
    let mut cpu_lm = CpuLm::new(p, adam(), Some(1.0), OptimState::default()).unwrap();
    let mut b = Batches::new(&corpus.tokens, 5, 3).unwrap();
    train(&mut b, 4, |i, t, _| {
        cpu_lm.step(i.view(), t.view()).unwrap()
    });
    let mut gpu_lm = GpuLm::new(ctx, &cpu_lm.params, adam(), Some(1.0), &cpu_lm.state).unwrap();
    gpu_lm.set_carry(cpu_lm.carry().as_ref()).unwrap();
    let mut b2 = b.clone();
    let want = train(&mut b, 3, |i, t, _| {
        cpu_lm.step(i.view(), t.view()).unwrap()
    });
    let got = train(&mut b2, 3, |i, t, _| {
        gpu_lm.step(i.view(), t.view()).unwrap().to_array().unwrap()[0]
    });
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() < 1e-4, "step {k}: {g} vs {w}");
    }
    let err = param_err(&gpu_lm.params().unwrap(), &cpu_lm.params);
    assert!(err < 2e-4, "parameters: {err:e}");
    assert_eq!(gpu_lm.optim_state().unwrap().step, 7);
}

/// Misuse is an error naming the argument: a short optimizer state, a checkpoint with a
/// mis-shaped tensor, chunks longer than the streams; arrays in another memory layout
/// train as standard ones do.
#[test]
fn misuse_is_an_error_and_layouts_do_not_matter() {
    use wgpu_rnn::Error;
    let (corpus, p) = setup(Cell::Lstm, 2);
    // Another memory layout: the embedding transposed twice (Fortran order).
    let mut q = p.clone();
    q.embedding = q
        .embedding
        .t()
        .as_standard_layout()
        .into_owned()
        .reversed_axes();
    assert!(!q.embedding.is_standard_layout());
    let mut a = CpuLm::new(p.clone(), adam(), None, OptimState::default()).unwrap();
    let mut b = CpuLm::new(q, adam(), None, OptimState::default()).unwrap();
    let mut batches = Batches::new(&corpus.tokens, 4, 2).unwrap();
    let (ids, targets, _) = batches.next_chunk();
    for _ in 0..2 {
        assert_eq!(
            a.step(ids.view(), targets.view()).unwrap(),
            b.step(ids.view(), targets.view()).unwrap()
        );
    }
    assert_eq!(a.params, b.params);
    common::expect_err(Batches::new(&corpus.tokens, usize::MAX, 2), "seq");
    common::expect_err(Batches::new(&corpus.tokens, 4, 0), "seq");
    // A state that is not this model's.
    let short = OptimState {
        step: 1,
        m: vec![vec![0.0; 3]],
        v: vec![],
    };
    let dir = std::env::temp_dir().join(format!("wgpu-rnn-misuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    common::expect_err(
        Checkpoint {
            params: p.clone(),
            optim: short.clone(),
            carry: None,
            meta: Default::default(),
        }
        .save(&path),
        "optim",
    );
    // A checkpoint whose config does not match its tensors.
    Checkpoint {
        params: p.clone(),
        optim: OptimState::default(),
        carry: None,
        meta: [("hidden".to_string(), "17".to_string())].into(),
    }
    .save(&path)
    .unwrap();
    // (`save` writes the real config over the metadata: it loads.)
    assert!(Checkpoint::load(&path).is_ok());
    let mut bytes = std::fs::read(&path).unwrap();
    // Corrupt the header's recorded hidden size: 16 → 61.
    let at = bytes
        .windows(12)
        .position(|w| w == b"\"hidden\":\"16")
        .unwrap();
    bytes[at + 10] = b'6';
    bytes[at + 11] = b'1';
    std::fs::write(&path, &bytes).unwrap();
    match Checkpoint::load(&path) {
        Err(Error::Weights { key, .. }) => {
            assert!(key.starts_with("rnn.") || key.starts_with("head"), "{key}")
        }
        r => panic!("a mis-shaped checkpoint: {r:?}"),
    }
    common::expect_err(Checkpoint::load(dir.join("missing.safetensors")), "path");
    std::fs::remove_dir_all(&dir).ok();
    let Some(ctx) = ctx() else { return };
    common::expect_err(GpuLm::new(ctx, &p, adam(), None, &short), "state");
}
