//! The notebook's `rnn_utils` and the exercise's `clip`, `sample`, `optimize`
//! (`notebook::rnn_utils`), and numpy's generator (`numpy::RandomState`): each against
//! values computed by hand from the definitions, the backward against f64 central
//! differences of the summed loss, and bad arguments.

mod common;

use std::collections::HashMap;

use common::{assert_close, expect_err, NumpyRng};
use ndarray::{array, Array2, Axis};
use wgpu_rnn::notebook::rnn_utils::*;
use wgpu_rnn::notebook::RnnParameters;
use wgpu_rnn::numpy::RandomState;

const N_A: usize = 3;
const V: usize = 5;

/// Parameters for `n_a` units over a vocabulary of `v`, drawn from numpy seeded `seed`,
/// of scale `scale` (biases too).
fn params(seed: u32, n_a: usize, v: usize, scale: f64) -> RnnParameters<f64> {
    let mut rng = NumpyRng::new(seed);
    let mut d = |shape: (usize, usize)| rng.randn(shape) * scale;
    RnnParameters {
        wax: d((n_a, v)),
        waa: d((n_a, n_a)),
        wya: d((v, n_a)),
        ba: d((n_a, 1)),
        by: d((v, 1)),
    }
}

fn cast32(p: &RnnParameters<f64>) -> RnnParameters<f32> {
    let c = |a: &Array2<f64>| a.mapv(|v| v as f32);
    RnnParameters {
        wax: c(&p.wax),
        waa: c(&p.waa),
        wya: c(&p.wya),
        ba: c(&p.ba),
        by: c(&p.by),
    }
}

/// Softmax of a column vector by its definition.
fn hand_softmax(z: &Array2<f64>) -> Array2<f64> {
    let m = z.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    let e = z.mapv(|v| (v - m).exp());
    let s = e.sum();
    e / s
}

/// One-hot column `(v, 1)` of `i`, zeros for `None`.
fn one_hot(i: Option<usize>, v: usize) -> Array2<f64> {
    let mut x = Array2::zeros((v, 1));
    if let Some(i) = i {
        x[[i, 0]] = 1.0;
    }
    x
}

/// One step by the definition: `(a, y)`.
fn hand_step(
    p: &RnnParameters<f64>,
    a_prev: &Array2<f64>,
    x: &Array2<f64>,
) -> (Array2<f64>, Array2<f64>) {
    let a = (p.wax.dot(x) + p.waa.dot(a_prev) + &p.ba).mapv(f64::tanh);
    let y = hand_softmax(&(p.wya.dot(&a) + &p.by));
    (a, y)
}

/// The loss and the states `a[t]`, `y_hat[t]` by a hand loop.
fn hand_forward(
    p: &RnnParameters<f64>,
    x: &[Option<usize>],
    y: &[usize],
    a0: &Array2<f64>,
) -> (f64, Vec<Array2<f64>>, Vec<Array2<f64>>) {
    let v = p.wax.ncols();
    let (mut a_prev, mut loss) = (a0.clone(), 0.0);
    let (mut aa, mut yy) = (vec![], vec![]);
    for (t, xi) in x.iter().enumerate() {
        let (a, yh) = hand_step(p, &a_prev, &one_hot(*xi, v));
        loss -= yh[[y[t], 0]].ln();
        a_prev = a.clone();
        aa.push(a);
        yy.push(yh);
    }
    (loss, aa, yy)
}

/// A dinosaur-like example: `None` first, `Y` = `X` shifted, ending with the newline 0.
fn example() -> (Vec<Option<usize>>, Vec<usize>) {
    let ix = [3, 1, 4, 1, 2, 4];
    let x: Vec<_> = std::iter::once(None)
        .chain(ix.iter().map(|&i| Some(i)))
        .collect();
    let y: Vec<_> = ix.iter().copied().chain([0]).collect();
    (x, y)
}

#[test]
fn random_state_is_numpy() {
    let mut rng = RandomState::new(1);
    let want = [1.624_345_36, -0.611_756_41, -0.528_171_75];
    for w in want {
        assert!((rng.randn() - w).abs() < 5e-9);
    }
    // Bit for bit the tests' generator, through re-seeding and mixed draws.
    for seed in [0, 1, 7, 12345, u32::MAX] {
        let (mut a, mut b) = (RandomState::new(seed), NumpyRng::new(seed));
        for k in 0..1500 {
            if k % 3 == 0 {
                assert_eq!(a.random_sample(), b.uniform());
            } else {
                assert_eq!(a.randn(), b.gauss());
            }
        }
        a.seed(seed);
        let mut b = NumpyRng::new(seed);
        assert_eq!(a.randn(), b.gauss());
    }
    let arr = RandomState::new(3).randn_array("x", (2, 3)).unwrap();
    assert_eq!(arr, NumpyRng::new(3).randn((2, 3)));
}

#[test]
fn choice_is_numpys_searchsorted() {
    let p = [0.1, 0.0, 0.25, 0.4, 0.25];
    for seed in 0..200 {
        let u = NumpyRng::new(seed).uniform();
        let mut acc = 0.0;
        let cdf: Vec<f64> = p
            .iter()
            .map(|v| {
                acc += v;
                acc
            })
            .collect();
        let want = cdf.iter().position(|&c| c / acc > u).unwrap();
        assert_eq!(RandomState::new(seed).choice(&p, 1.5e-8).unwrap(), want);
        assert_ne!(want, 1, "a zero probability is never drawn");
    }
    let mut rng = RandomState::new(0);
    expect_err(rng.choice(&[0.5, 0.6], 1.5e-8), "p");
    expect_err(rng.choice(&[1.5, -0.5], 1.5e-8), "p");
    expect_err(rng.choice(&[f64::NAN, 1.0], 1.5e-8), "p");
    expect_err(rng.choice(&[], 1.5e-8), "p");
}

#[test]
fn softmax_smooth_initial_loss() {
    let x = array![[1.0, -2.0, 1000.0], [2.0, 0.5, 999.0], [-1.0, 3.0, -5.0]];
    let got = softmax(x.view()).unwrap();
    for (k, col) in x.axis_iter(Axis(1)).enumerate() {
        let c = col.to_owned().insert_axis(Axis(1));
        let want = hand_softmax(&c);
        assert_close("softmax", &got.column(k), &want.column(0), 1e-15);
        assert!((got.column(k).sum() - 1.0).abs() < 1e-15);
    }
    let g32 = softmax(x.mapv(|v| v as f32).view()).unwrap();
    assert_close("softmax f32", &g32, &got, 1e-6);
    expect_err(softmax(Array2::<f64>::zeros((0, 2)).view()), "x");

    assert_eq!(smooth(10.0f64, 2.0), 10.0 * 0.999 + 2.0 * 0.001);
    assert_eq!(smooth(10.0f32, 2.0), 10.0f32 * 0.999 + 2.0 * 0.001);
    assert_eq!(
        get_initial_loss::<f64>(27, 7).unwrap(),
        -(1.0f64 / 27.0).ln() * 7.0
    );
    assert_eq!(
        get_initial_loss::<f32>(27, 7).unwrap(),
        (-(1.0f64 / 27.0).ln() * 7.0) as f32
    );
    expect_err(get_initial_loss::<f64>(0, 7), "vocab_size");
}

#[test]
fn initialize_parameters_is_the_notebooks_draws() {
    let (n_a, n_x, n_y) = (4, 6, 5);
    let p = initialize_parameters::<f64>(n_a, n_x, n_y).unwrap();
    let mut rng = NumpyRng::new(1);
    assert_eq!(p.wax, rng.randn((n_a, n_x)) * 0.01);
    assert_eq!(p.waa, rng.randn((n_a, n_a)) * 0.01);
    assert_eq!(p.wya, rng.randn((n_y, n_a)) * 0.01);
    assert_eq!(p.ba, Array2::<f64>::zeros((n_a, 1)));
    assert_eq!(p.by, Array2::<f64>::zeros((n_y, 1)));
    assert!((p.wax[[0, 0]] - 1.624_345_36 * 0.01).abs() < 1e-10);
    assert!((p.wax[[0, 1]] + 0.611_756_41 * 0.01).abs() < 1e-10);
    let p32 = initialize_parameters::<f32>(n_a, n_x, n_y).unwrap();
    assert_eq!(p32, cast32(&p));
    expect_err(initialize_parameters::<f64>(0, 2, 2), "n_a");
    expect_err(initialize_parameters::<f64>(2, 0, 2), "n_x");
    expect_err(initialize_parameters::<f64>(2, 2, 0), "n_y");
    expect_err(initialize_parameters::<f64>(1 << 40, 1 << 40, 2), "n_x");
}

#[test]
fn step_forward_by_hand() {
    let p = params(2, N_A, V, 0.8);
    let mut rng = NumpyRng::new(5);
    let a_prev = rng.randn((N_A, 1));
    let x = one_hot(Some(2), V);
    let (a, y) = rnn_step_forward(&p, a_prev.view(), x.view()).unwrap();
    let (wa, wy) = hand_step(&p, &a_prev, &x);
    assert_close("a_next", &a, &wa, 1e-14);
    assert_close("p_t", &y, &wy, 1e-14);
    // Several columns at once, each a step of its own.
    let a2 = rng.randn((N_A, 2));
    let x2 = rng.randn((V, 2));
    let (a, y) = rnn_step_forward(&p, a2.view(), x2.view()).unwrap();
    for k in 0..2 {
        let col = |m: &Array2<f64>| m.column(k).to_owned().insert_axis(Axis(1));
        let (wa, wy) = hand_step(&p, &col(&a2), &col(&x2));
        assert_close("a_next m=2", &col(&a), &wa, 1e-14);
        assert_close("p_t m=2", &col(&y), &wy, 1e-14);
    }
    let (a32, y32) = rnn_step_forward(
        &cast32(&p),
        a_prev.mapv(|v| v as f32).view(),
        x.mapv(|v| v as f32).view(),
    )
    .unwrap();
    let (wa, wy) = hand_step(&p, &a_prev, &x);
    assert_close("a_next f32", &a32, &wa, 1e-5);
    assert_close("p_t f32", &y32, &wy, 1e-5);
}

#[test]
fn forward_by_hand() {
    let p = params(3, N_A, V, 0.7);
    let (x, y) = example();
    let a0 = NumpyRng::new(4).randn((N_A, 1));
    let (loss, cache) = rnn_forward(&x, &y, a0.view(), &p, V).unwrap();
    let (wl, wa, wy) = hand_forward(&p, &x, &y, &a0);
    assert!((loss - wl).abs() < 1e-12 * wl.abs(), "loss {loss} vs {wl}");
    assert_eq!(cache.a.len(), x.len());
    for t in 0..x.len() {
        assert_close("a[t]", &cache.a[t], &wa[t], 1e-13);
        assert_close("y_hat[t]", &cache.y_hat[t], &wy[t], 1e-13);
        assert_eq!(cache.x[t], one_hot(x[t], V));
    }
    assert_eq!(cache.a0, a0);
    // The loss is a sum over the steps: the first step alone is its first term.
    let (l1, _) = rnn_forward(&x[..1], &y[..1], a0.view(), &p, V).unwrap();
    assert!((l1 + wy[0][[y[0], 0]].ln()).abs() < 1e-14);
    // Tiny weights: near-uniform guesses, the loss near the initial loss.
    let p0 = initialize_parameters::<f64>(N_A, V, V).unwrap();
    let (l0, _) = rnn_forward(&x, &y, Array2::zeros((N_A, 1)).view(), &p0, V).unwrap();
    assert!((l0 - get_initial_loss::<f64>(V, x.len()).unwrap()).abs() < 1e-2);
    // f32 follows f64.
    let (l32, c32) = rnn_forward(&x, &y, a0.mapv(|v| v as f32).view(), &cast32(&p), V).unwrap();
    assert!((f64::from(l32) - wl).abs() < 1e-5 * wl);
    assert_close("a[T-1] f32", &c32.a[x.len() - 1], &wa[x.len() - 1], 1e-5);
}

/// The notebook's `rnn_backward` loop over `rnn_step_backward`, by its definition.
fn loop_backward(p: &RnnParameters<f64>, y: &[usize], cache: &Cache<f64>) -> Gradients<f64> {
    let mut g = Gradients::zeros(p).unwrap();
    for t in (0..y.len()).rev() {
        let mut dy = cache.y_hat[t].clone();
        dy[[y[t], 0]] -= 1.0;
        let a_prev = if t == 0 { &cache.a0 } else { &cache.a[t - 1] };
        rnn_step_backward(
            dy.view(),
            &mut g,
            p,
            cache.x[t].view(),
            cache.a[t].view(),
            a_prev.view(),
        )
        .unwrap();
    }
    g
}

#[test]
fn step_backward_by_hand() {
    let p = params(6, N_A, V, 0.9);
    let mut rng = NumpyRng::new(8);
    let (dy, x, a_prev, da_next) = (
        rng.randn((V, 1)),
        rng.randn((V, 1)),
        rng.randn((N_A, 1)),
        rng.randn((N_A, 1)),
    );
    let (a, _) = hand_step(&p, &a_prev, &x);
    let mut g = Gradients::zeros(&p).unwrap();
    // Start from something already accumulated.
    g.dwax.fill(0.5);
    g.dwaa.fill(-0.25);
    g.dwya.fill(0.125);
    g.db.fill(1.0);
    g.dby.fill(-1.0);
    g.da_next = da_next.clone();
    let before = g.clone();
    rnn_step_backward(dy.view(), &mut g, &p, x.view(), a.view(), a_prev.view()).unwrap();
    let da = p.wya.t().dot(&dy) + &da_next;
    let daraw = (1.0 - a.mapv(|v| v * v)) * &da;
    assert_close("dWya", &g.dwya, &(&before.dwya + &dy.dot(&a.t())), 1e-14);
    assert_close("dby", &g.dby, &(&before.dby + &dy), 1e-14);
    assert_close("db", &g.db, &(&before.db + &daraw), 1e-14);
    assert_close("dWax", &g.dwax, &(&before.dwax + &daraw.dot(&x.t())), 1e-14);
    assert_close(
        "dWaa",
        &g.dwaa,
        &(&before.dwaa + &daraw.dot(&a_prev.t())),
        1e-14,
    );
    assert_close("da_next", &g.da_next, &p.waa.t().dot(&daraw), 1e-14);
}

#[test]
fn backward_matches_central_differences() {
    let p = params(9, N_A, V, 0.9);
    let (x, y) = example();
    let a0 = NumpyRng::new(10).randn((N_A, 1)) * 0.5;
    let (_, cache) = rnn_forward(&x, &y, a0.view(), &p, V).unwrap();
    let (g, a) = rnn_backward(&x, &y, &p, &cache).unwrap();
    assert_eq!(a, cache.a);
    // The notebook's per-step loop gives the same sums.
    let lg = loop_backward(&p, &y, &cache);
    for (name, got, want) in [
        ("dWax", &g.dwax, &lg.dwax),
        ("dWaa", &g.dwaa, &lg.dwaa),
        ("dWya", &g.dwya, &lg.dwya),
        ("db", &g.db, &lg.db),
        ("dby", &g.dby, &lg.dby),
        ("da_next", &g.da_next, &lg.da_next),
    ] {
        assert_close(&format!("loop {name}"), got, want, 1e-12);
    }
    let loss = |p: &RnnParameters<f64>, a0: &Array2<f64>| hand_forward(p, &x, &y, a0).0;
    let h = 1e-6;
    type Pick = fn(&mut RnnParameters<f64>) -> &mut Array2<f64>;
    let picks: [(&str, Pick, &Array2<f64>); 5] = [
        ("dWax", |p| &mut p.wax, &g.dwax),
        ("dWaa", |p| &mut p.waa, &g.dwaa),
        ("dWya", |p| &mut p.wya, &g.dwya),
        ("db", |p| &mut p.ba, &g.db),
        ("dby", |p| &mut p.by, &g.dby),
    ];
    for (name, pick, got) in picks {
        let mut fd = Array2::zeros(got.raw_dim());
        for idx in ndarray::indices(got.raw_dim()) {
            let (mut pp, mut pm) = (p.clone(), p.clone());
            pick(&mut pp)[idx] += h;
            pick(&mut pm)[idx] -= h;
            fd[idx] = (loss(&pp, &a0) - loss(&pm, &a0)) / (2.0 * h);
        }
        assert_close(name, got, &fd, 1e-7);
    }
    let mut fd = Array2::zeros((N_A, 1));
    for i in 0..N_A {
        let (mut ap, mut am) = (a0.clone(), a0.clone());
        ap[[i, 0]] += h;
        am[[i, 0]] -= h;
        fd[[i, 0]] = (loss(&p, &ap) - loss(&p, &am)) / (2.0 * h);
    }
    assert_close("da_next (d loss / d a0)", &g.da_next, &fd, 1e-7);
    // f32 follows f64.
    let p32 = cast32(&p);
    let (_, c32) = rnn_forward(&x, &y, a0.mapv(|v| v as f32).view(), &p32, V).unwrap();
    let (g32, _) = rnn_backward(&x, &y, &p32, &c32).unwrap();
    assert_close("dWaa f32", &g32.dwaa, &g.dwaa, 1e-5);
    assert_close("dWya f32", &g32.dwya, &g.dwya, 1e-5);
}

#[test]
fn update_and_clip_by_hand() {
    let p = params(11, N_A, V, 1.0);
    let mut rng = NumpyRng::new(12);
    let mut g = Gradients::zeros(&p).unwrap();
    g.dwax = rng.randn((N_A, V)) * 8.0;
    g.dwaa = rng.randn((N_A, N_A)) * 8.0;
    g.dwya = rng.randn((V, N_A)) * 8.0;
    g.db = rng.randn((N_A, 1)) * 8.0;
    g.dby = rng.randn((V, 1)) * 8.0;
    g.da_next = rng.randn((N_A, 1)) * 8.0;
    g.dwaa[[0, 0]] = f64::NAN;

    let mut q = p.clone();
    update_parameters(&mut q, &g, 0.05).unwrap();
    assert_eq!(q.wax, &p.wax - &(&g.dwax * 0.05));
    assert_eq!(q.wya, &p.wya - &(&g.dwya * 0.05));
    assert_eq!(q.ba, &p.ba - &(&g.db * 0.05));
    assert_eq!(q.by, &p.by - &(&g.dby * 0.05));
    assert_eq!(q.waa[[1, 1]], p.waa[[1, 1]] - g.dwaa[[1, 1]] * 0.05);

    let mut c = g.clone();
    clip(&mut c, 5.0).unwrap();
    let hand = |a: &Array2<f64>| a.mapv(|v| v.clamp(-5.0, 5.0));
    assert_eq!(c.dwax, hand(&g.dwax));
    assert_eq!(c.dwya, hand(&g.dwya));
    assert_eq!(c.db, hand(&g.db));
    assert_eq!(c.dby, hand(&g.dby));
    assert!(c.dwaa[[0, 0]].is_nan());
    assert_eq!(c.dwaa[[1, 2]], hand(&g.dwaa)[[1, 2]]);
    assert_eq!(c.da_next, g.da_next, "da_next is not clipped");
    assert!(
        c.dwax.iter().any(|&v| v.abs() == 5.0),
        "the test clips something"
    );
    expect_err(clip(&mut c, -1.0), "maxValue");
    expect_err(clip(&mut c, f64::NAN), "maxValue");

    let mut bad = g.clone();
    bad.dwax = Array2::zeros((N_A, V + 1));
    let mut q = p.clone();
    expect_err(update_parameters(&mut q, &bad, 0.1), r#"gradients["dWax"]"#);
    assert_eq!(q, p, "nothing updated on an error");
}

/// The exercise's `sample` by hand, numpy's choice as `searchsorted` over one uniform.
fn hand_sample(p: &RnnParameters<f64>, newline: usize, seed: u32) -> Vec<usize> {
    let v = p.by.nrows();
    let mut x = Array2::zeros((v, 1));
    let mut a_prev = Array2::zeros((p.waa.nrows(), 1));
    let (mut idx, mut counter, mut seed, mut out) = (usize::MAX, 0u32, seed, vec![]);
    while idx != newline && counter != 50 {
        let (a, y) = hand_step(p, &a_prev, &x);
        let u = NumpyRng::new(counter + seed).uniform();
        let mut acc = 0.0;
        let cdf: Vec<f64> = y
            .iter()
            .map(|v| {
                acc += v;
                acc
            })
            .collect();
        idx = cdf.iter().position(|&c| c / acc > u).unwrap();
        out.push(idx);
        x = one_hot(Some(idx), v);
        a_prev = a;
        seed += 1;
        counter += 1;
    }
    if counter == 50 {
        out.push(newline);
    }
    out
}

#[test]
fn sample_by_hand() {
    let ix: HashMap<char, usize> = [('\n', 0), ('a', 1), ('b', 2), ('c', 3), ('d', 4)].into();
    let mut p = params(13, N_A, V, 1.0);
    let mut stopped = 0;
    for seed in 0..40 {
        let got = sample(&p, &ix, seed).unwrap();
        assert_eq!(got, hand_sample(&p, 0, seed), "seed {seed}");
        assert_eq!(got.last(), Some(&0));
        if got.len() < 51 {
            stopped += 1;
        }
        let g32 = sample(&cast32(&p), &ix, seed).unwrap();
        assert_eq!(g32.last(), Some(&0));
    }
    assert!(stopped > 0, "some samples stop at the newline");
    // The newline is never drawn: 50 draws, then the newline appended.
    p.by[[0, 0]] = -60.0;
    let got = sample(&p, &ix, 3).unwrap();
    assert_eq!(got.len(), 51);
    assert!(got[..50].iter().all(|&i| i != 0));
    assert_eq!(got, hand_sample(&p, 0, 3));
    // The newline is almost sure at once.
    p.by[[0, 0]] = 60.0;
    assert_eq!(sample(&p, &ix, 3).unwrap(), vec![0]);

    let no_nl: HashMap<char, usize> = [('a', 1)].into();
    expect_err(sample(&p, &no_nl, 0), "char_to_ix");
    let far: HashMap<char, usize> = [('\n', V)].into();
    expect_err(sample(&p, &far, 0), "char_to_ix");
    p.by[[0, 0]] = -60.0;
    expect_err(sample(&p, &ix, u32::MAX - 10), "seed");
    let mut q = params(13, N_A, V, 1.0);
    q.wax = Array2::zeros((N_A, V + 1));
    expect_err(sample(&q, &ix, 0), r#"parameters["Wax"]"#);
}

#[test]
fn optimize_composes() {
    let p = params(14, N_A, V, 1.5);
    let (x, y) = example();
    let a_prev = NumpyRng::new(15).randn((N_A, 1));
    let mut q = p.clone();
    let (loss, g, a_last) = optimize(&x, &y, a_prev.view(), &mut q, 0.1).unwrap();

    let (wl, cache) = rnn_forward(&x, &y, a_prev.view(), &p, V).unwrap();
    let (mut wg, wa) = rnn_backward(&x, &y, &p, &cache).unwrap();
    clip(&mut wg, 5.0).unwrap();
    let mut wp = p.clone();
    update_parameters(&mut wp, &wg, 0.1).unwrap();
    assert_eq!(loss, wl);
    assert_eq!(g, wg);
    assert_eq!(q, wp);
    assert_eq!(a_last, wa[x.len() - 1]);
    let (hl, ha, _) = hand_forward(&p, &x, &y, &a_prev);
    assert!((loss - hl).abs() < 1e-12 * hl);
    assert_close("a[len(X)-1]", &a_last, &ha[x.len() - 1], 1e-13);
    for d in [&g.dwax, &g.dwaa, &g.dwya, &g.db, &g.dby] {
        assert!(d.iter().all(|v| v.abs() <= 5.0));
    }
    // A step of training lowers the loss on the example.
    let mut r = initialize_parameters::<f64>(N_A, V, V).unwrap();
    let a0 = Array2::zeros((N_A, 1));
    let first = optimize(&x, &y, a0.view(), &mut r, 0.5).unwrap().0;
    let mut last = first;
    for _ in 0..30 {
        last = optimize(&x, &y, a0.view(), &mut r, 0.5).unwrap().0;
    }
    assert!(last < first, "{last} !< {first}");
    // f32 too.
    let mut r32 = initialize_parameters::<f32>(N_A, V, V).unwrap();
    let l32 = optimize(&x, &y, a0.mapv(|v| v as f32).view(), &mut r32, 0.5)
        .unwrap()
        .0;
    assert!((f64::from(l32) - first).abs() < 1e-5 * first);
    expect_err(
        optimize(&x, &y, Array2::zeros((N_A + 1, 1)).view(), &mut r, 0.1),
        "a_prev",
    );
}

#[test]
fn bad_arguments_are_named() {
    let p = params(16, N_A, V, 1.0);
    let (x, y) = example();
    let a0 = Array2::<f64>::zeros((N_A, 1));
    let fwd = |x: &[Option<usize>], y: &[usize], p: &RnnParameters<f64>| {
        rnn_forward(x, y, a0.view(), p, V).map(|r| r.0)
    };
    let mut bx = x.clone();
    bx[2] = Some(V);
    expect_err(fwd(&bx, &y, &p), "X");
    expect_err(fwd(&[], &[], &p), "X");
    let mut by = y.clone();
    by[1] = V;
    expect_err(fwd(&x, &by, &p), "Y");
    expect_err(fwd(&x, &y[1..], &p), "Y");
    expect_err(
        rnn_forward(&x, &y, Array2::zeros((N_A, 2)).view(), &p, V),
        "a0",
    );
    expect_err(rnn_forward(&x, &y, a0.view(), &p, V + 1), "vocab_size");
    let mut q = p.clone();
    q.waa = Array2::zeros((N_A, N_A + 1));
    expect_err(fwd(&x, &y, &q), r#"parameters["Waa"]"#);
    let mut q = p.clone();
    q.ba = Array2::zeros((N_A + 1, 1));
    expect_err(fwd(&x, &y, &q), r#"parameters["b"]"#);
    let mut q = p.clone();
    q.wya = Array2::zeros((V, N_A + 1));
    expect_err(fwd(&x, &y, &q), r#"parameters["Wya"]"#);
    let mut q = p.clone();
    q.by = Array2::zeros((V + 1, 1));
    expect_err(fwd(&x, &y, &q), r#"parameters["by"]"#);
    let mut q = p.clone();
    q.wax = Array2::zeros((N_A + 1, V));
    expect_err(fwd(&x, &y, &q), r#"parameters["Wax"]"#);

    let (_, cache) = rnn_forward(&x, &y, a0.view(), &p, V).unwrap();
    expect_err(rnn_backward(&x[1..], &y[1..], &p, &cache), "cache");
    let mut c = cache.clone();
    c.a[2] = Array2::zeros((N_A + 1, 1));
    expect_err(rnn_backward(&x, &y, &p, &c), "cache");
    expect_err(rnn_backward(&x, &by, &p, &cache), "Y");

    let a1 = Array2::<f64>::zeros((N_A, 1));
    expect_err(
        rnn_step_forward(&p, a1.view(), Array2::zeros((V + 1, 1)).view()),
        "x",
    );
    expect_err(
        rnn_step_forward(
            &p,
            Array2::zeros((N_A, 2)).view(),
            Array2::zeros((V, 1)).view(),
        ),
        "a_prev",
    );
    let mut g = Gradients::zeros(&p).unwrap();
    let (dy, xv) = (Array2::<f64>::zeros((V, 1)), Array2::<f64>::zeros((V, 1)));
    expect_err(
        rnn_step_backward(
            Array2::zeros((V + 1, 1)).view(),
            &mut g,
            &p,
            xv.view(),
            a1.view(),
            a1.view(),
        ),
        "dy",
    );
    g.dwaa = Array2::zeros((1, 1));
    expect_err(
        rnn_step_backward(dy.view(), &mut g, &p, xv.view(), a1.view(), a1.view()),
        r#"gradients["dWaa"]"#,
    );
}

/// The exercise's own checks (the Dinosaurus Island assignment's expected outputs):
/// `clip` (seed 3, maxValue 10), `optimize` (seed 1, vocab 27, n_a 100, lr 0.01) and
/// `sample` (seed 2, sample seed 0). The sampling RNN (weights of scale 1 over 100 units)
/// is chaotic: a difference of one rounding in its state grows about 2.5× a step (1e-4 by
/// step 30, O(1) by step 42), so the draws after about 40 steps depend on the order of
/// the sums (BLAS's, the CPU path's); the first 30 published indices are checked.
#[test]
fn the_exercises_expected_outputs() {
    let mut rng = NumpyRng::new(3);
    let mut g = Gradients {
        dwax: rng.randn((5, 3)) * 10.0,
        dwaa: rng.randn((5, 5)) * 10.0,
        dwya: rng.randn((2, 5)) * 10.0,
        db: rng.randn((5, 1)) * 10.0,
        dby: rng.randn((2, 1)) * 10.0,
        da_next: Array2::zeros((5, 1)),
    };
    clip(&mut g, 10.0).unwrap();
    common::assert_values(
        "clip",
        &[
            g.dwaa[[1, 2]],
            g.dwax[[3, 1]],
            g.dwya[[1, 2]],
            g.db[[4, 0]],
            g.dby[[1, 0]],
        ],
        &[10.0, -10.0, 0.29713815361, 10.0, 8.45833407],
        1e-8,
    );

    let (v, n_a) = (27, 100);
    let draw = |rng: &mut NumpyRng| RnnParameters {
        wax: rng.randn((n_a, v)),
        waa: rng.randn((n_a, n_a)),
        wya: rng.randn((v, n_a)),
        ba: rng.randn((n_a, 1)),
        by: rng.randn((v, 1)),
    };
    let mut rng = NumpyRng::new(1);
    let a_prev = rng.randn((n_a, 1));
    let mut p = draw(&mut rng);
    let x: Vec<_> = [12, 3, 5, 11, 22, 3].iter().map(|&i| Some(i)).collect();
    let y = [4, 14, 11, 22, 25, 26];
    let (loss, g, a_last) = optimize(&x, &y, a_prev.view(), &mut p, 0.01).unwrap();
    let argmax = g
        .dwax
        .iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |m, (i, &v)| if v > m.1 { (i, v) } else { m },
        )
        .0;
    assert_eq!(argmax, 93, "np.argmax(gradients[\"dWax\"])");
    common::assert_values(
        "optimize",
        &[
            loss,
            g.dwaa[[1, 2]],
            g.dwya[[1, 2]],
            g.db[[4, 0]],
            g.dby[[1, 0]],
            a_last[[4, 0]],
        ],
        &[
            126.503975722,
            0.194709315347,
            -0.007773876032,
            -0.06809825,
            0.01538192,
            -1.0,
        ],
        1e-8,
    );

    let p = draw(&mut NumpyRng::new(2));
    let chars = "\nabcdefghijklmnopqrstuvwxyz";
    let ix: HashMap<char, usize> = chars.chars().enumerate().map(|(i, c)| (c, i)).collect();
    let got = sample(&p, &ix, 0).unwrap();
    #[rustfmt::skip]
    let published = [
        12, 17, 24, 14, 13, 9, 10, 22, 24, 6, 13, 11, 12, 6, 21, 15, 21, 14, 3, 2, 1, 21, 18,
        24, 7, 25, 6, 25, 18, 10,
    ];
    assert_eq!(got[..30], published);
    assert_eq!(got.last(), Some(&0), "ends with the newline");
    assert!(got.len() <= 51);
}
