//! The GPU network against the f64 CPU network for every cell (the lecture's GRU
//! included): stacked, bidirectional, with and without biases and lengths, odd sizes,
//! T = 1, outputs NaN-poisoned first, on lavapipe and GL; inference against training;
//! bad input.

mod common;

use common::gpu::{ctx, gl_variant_ctxs, variant_ctxs, variant_label};
use ndarray::{Array3, ArrayD};
use wgpu_rnn::gpu::{Context, Mode, Network, Tensor};
use wgpu_rnn::net::{cpu, NetConfig, NetParams};
use wgpu_rnn::{Cell, Error, SplitMix64};

/// A difference that is not a number counts as infinitely large (`f64::max` would skip
/// it and let a NaN-poisoned result pass).
fn nan_inf(d: f64) -> f64 {
    if d.is_nan() {
        f64::INFINITY
    } else {
        d
    }
}

fn draw(rng: &mut SplitMix64, shape: (usize, usize, usize)) -> Array3<f64> {
    Array3::from_shape_simple_fn(shape, || 2.0 * rng.next_f64() - 1.0)
}

/// `max |got − want| / max(1, max |want|)` within 2e-4.
fn close(label: &str, got: &ArrayD<f32>, want: &[f64]) {
    let g: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    assert_eq!(g.len(), want.len(), "{label}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let err = g
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max(nan_inf((a - b).abs())))
        / scale;
    assert!(err <= 2e-4, "{label}: err {err:e}");
}

/// One network shape: (layers, bidirectional, bias, I, H, B, T, lengths).
type Shape = (
    usize,
    bool,
    bool,
    usize,
    usize,
    usize,
    usize,
    Option<Vec<usize>>,
);

fn check(ctx: &Context, cell: Cell, shape: &Shape, seed: u64, label: &str) {
    check_dropout(ctx, cell, shape, seed, label, 0.0);
}

/// [`check`] with dropout `dropout` between the layers in training (the GPU's masks
/// drawn from the same seed as the CPU's).
fn check_dropout(ctx: &Context, cell: Cell, shape: &Shape, seed: u64, label: &str, dropout: f32) {
    let (layers, bi, bias, i, h, b, t, lengths) = shape.clone();
    let config = NetConfig {
        cell,
        input_size: i,
        hidden_size: h,
        num_layers: layers,
        bidirectional: bi,
        bias,
        dropout,
    };
    let p = NetParams::<f64>::init(config, seed).unwrap();
    let ld = layers * config.directions();
    let mut rng = SplitMix64(seed + 1);
    let mut x = draw(&mut rng, (t, b, i));
    // Padding past each sequence's end is ignored, even when it is not finite.
    if let Some(l) = &lengths {
        for (row, &n) in l.iter().enumerate() {
            x.slice_mut(ndarray::s![n.., row, ..]).fill(f64::NAN);
        }
    }
    let h0 = draw(&mut rng, (ld, b, h));
    let c0 = cell.has_cell_state().then(|| draw(&mut rng, (ld, b, h)));
    let dout = draw(&mut rng, (t, b, config.directions() * h));
    let dhn = draw(&mut rng, (ld, b, h));
    let dcn = draw(&mut rng, (ld, b, h));
    let lens = lengths.as_deref();
    let tr = cpu::forward_train(
        &p,
        x.view(),
        Some(h0.view()),
        c0.as_ref().map(|a| a.view()),
        lens,
        seed + 9,
    )
    .unwrap();
    // Gradients past a sequence's end are ignored: the CPU gets them zeroed.
    let mut dout_cpu = dout.clone();
    if let Some(l) = lens {
        for (row, &n) in l.iter().enumerate() {
            dout_cpu.slice_mut(ndarray::s![n.., row, ..]).fill(0.0);
        }
    }
    let dcn_v = c0.as_ref().map(|_| dcn.view());
    let want = cpu::backward(&p, &tr, dout_cpu.view(), Some(dhn.view()), dcn_v).unwrap();

    let net = Network::new(ctx, &p.cast::<f32>()).unwrap();
    net.seed_dropout(seed + 9);
    let up = |a: &Array3<f64>| Tensor::from_array(ctx, "t", &a.mapv(|v| v as f32)).unwrap();
    let (xg, h0g, c0g) = (up(&x), up(&h0), c0.as_ref().map(up));
    let out = net
        .forward(&xg, Some(&h0g), c0g.as_ref(), lens, Mode::Training)
        .unwrap();
    let flat = |a: &Array3<f64>| a.iter().copied().collect::<Vec<_>>();
    close(
        &format!("{label} output"),
        &out.output.to_array().unwrap(),
        &flat(&tr.output),
    );
    close(
        &format!("{label} h_n"),
        &out.h_n.to_array().unwrap(),
        &flat(&tr.h_n),
    );
    if let (Some(g), Some(w)) = (&out.c_n, &tr.c_n) {
        close(&format!("{label} c_n"), &g.to_array().unwrap(), &flat(w));
    }
    let trained_with = out.trace.as_ref().unwrap().dropout_seed();
    assert_eq!(
        trained_with,
        (dropout > 0.0 && layers > 1).then_some(seed + 9)
    );
    // Inference and States give the same outputs (without dropout: those of training).
    let modes: &[Mode] = if trained_with.is_some() {
        &[]
    } else {
        &[Mode::Inference, Mode::States]
    };
    for &mode in modes {
        let o = net
            .forward(&xg, Some(&h0g), c0g.as_ref(), lens, mode)
            .unwrap();
        assert_eq!(
            o.output.to_array().unwrap(),
            out.output.to_array().unwrap(),
            "{label} {mode:?}"
        );
        assert_eq!(
            o.h_n.to_array().unwrap(),
            out.h_n.to_array().unwrap(),
            "{label} {mode:?} h_n"
        );
        if let (Some(a), Some(b)) = (&o.c_n, &out.c_n) {
            assert_eq!(
                a.to_array().unwrap(),
                b.to_array().unwrap(),
                "{label} {mode:?} c_n"
            );
        }
    }
    let dcn_g = c0.as_ref().map(|_| up(&dcn));
    let g = net
        .backward(
            out.trace.as_ref().unwrap(),
            &up(&dout),
            Some(&up(&dhn)),
            dcn_g.as_ref(),
        )
        .unwrap();
    close(
        &format!("{label} dx"),
        &g.dx.to_array().unwrap(),
        &flat(&want.dx),
    );
    close(
        &format!("{label} dh0"),
        &g.dh0.to_array().unwrap(),
        &flat(&want.dh0),
    );
    if let (Some(a), Some(w)) = (&g.dc0, &want.dc0) {
        close(&format!("{label} dc0"), &a.to_array().unwrap(), &flat(w));
    }
    let named = g.named().unwrap();
    let wanted = want.named();
    assert_eq!(named.len(), wanted.len(), "{label}: parameter gradients");
    for ((k, v), (kw, w)) in named.iter().zip(&wanted) {
        assert_eq!(k, kw);
        let v = ArrayD::from_shape_vec(vec![v.len()], v.clone()).unwrap();
        close(&format!("{label} grad {k}"), &v, w);
    }
}

fn shapes() -> Vec<Shape> {
    vec![
        (2, true, true, 3, 17, 5, 4, Some(vec![2, 4, 1, 4, 3])),
        (1, false, false, 1, 1, 1, 1, None),
        (2, false, true, 33, 9, 3, 3, None),
        (
            1,
            true,
            false,
            5,
            33,
            9,
            3,
            Some(vec![3, 1, 1, 2, 3, 3, 2, 1, 2]),
        ),
    ]
}

#[test]
fn gpu_network_matches_cpu_for_every_cell() {
    for ctx in variant_ctxs() {
        for (c, cell) in Cell::ALL.into_iter().enumerate() {
            for (k, shape) in shapes().iter().enumerate() {
                check(
                    ctx,
                    cell,
                    shape,
                    100 * c as u64 + k as u64,
                    &format!("{}{cell:?} {shape:?}", variant_label(ctx)),
                );
            }
        }
    }
}

/// Dropout between layers in training: the GPU draws the CPU's masks for a seed, forward
/// and backward, with and without lengths; training differs from inference.
#[test]
fn dropout_masks_are_the_cpu_masks() {
    let Some(ctx) = ctx() else { return };
    for (k, cell) in [Cell::Lstm, Cell::GRU, Cell::Rnn].into_iter().enumerate() {
        let mut shape = shapes()[0].clone();
        shape.0 = 3;
        check_dropout(
            ctx,
            cell,
            &shape,
            300 + k as u64,
            &format!("dropout {cell:?}"),
            0.3,
        );
    }
    let config = NetConfig {
        num_layers: 2,
        dropout: 0.5,
        ..NetConfig::new(Cell::Lstm, 3, 8)
    };
    let net = Network::new(ctx, &NetParams::<f32>::init(config, 4).unwrap()).unwrap();
    let x = Tensor::from_array(ctx, "x", &Array3::<f32>::from_elem((4, 2, 3), 0.5)).unwrap();
    let eval = net.forward(&x, None, None, None, Mode::Inference).unwrap();
    net.seed_dropout(1);
    let a = net.forward(&x, None, None, None, Mode::Training).unwrap();
    let b = net.forward(&x, None, None, None, Mode::Training).unwrap();
    assert_eq!(a.trace.as_ref().unwrap().dropout_seed(), Some(1));
    assert_eq!(b.trace.as_ref().unwrap().dropout_seed(), Some(2));
    let (e, a, b) = (
        eval.output.to_array().unwrap(),
        a.output.to_array().unwrap(),
        b.output.to_array().unwrap(),
    );
    assert_ne!(e, a, "training drops");
    assert_ne!(a, b, "each training forward draws new masks");
}

#[test]
fn gl_network_matches_cpu_for_every_cell() {
    for ctx in gl_variant_ctxs() {
        for (c, cell) in Cell::ALL.into_iter().enumerate() {
            let shape = &shapes()[0];
            check(
                ctx,
                cell,
                shape,
                700 + c as u64,
                &format!("GL {}{cell:?} {shape:?}", variant_label(ctx)),
            );
        }
    }
}

#[test]
fn bad_network_input_is_an_error_naming_the_argument() {
    let Some(ctx) = ctx() else { return };
    let config = NetConfig {
        num_layers: 2,
        bidirectional: true,
        ..NetConfig::new(Cell::Lstm, 3, 4)
    };
    let net = Network::new(ctx, &NetParams::<f32>::init(config, 1).unwrap()).unwrap();
    let x = Tensor::zeros(ctx, "x", &[5, 2, 3]).unwrap();
    let named = |r: Result<wgpu_rnn::gpu::NetForward, Error>, arg: &str| match r {
        Err(Error::Shape { arg: a, .. }) | Err(Error::Invalid { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming {arg}, got {other:?}"),
    };
    for bad in [vec![0, 1], vec![6, 1], vec![1, 2, 3]] {
        named(
            net.forward(&x, None, None, Some(&bad), Mode::Training),
            "lengths",
        );
    }
    let wrong = Tensor::zeros(ctx, "h0", &[2, 2, 4]).unwrap();
    named(
        net.forward(&x, Some(&wrong), None, None, Mode::Training),
        "h0",
    );
    named(
        net.forward(&x, None, Some(&wrong), None, Mode::Training),
        "c0",
    );
    named(
        net.forward(
            &Tensor::zeros(ctx, "x", &[5, 2, 4]).unwrap(),
            None,
            None,
            None,
            Mode::Training,
        ),
        "x",
    );
    let gru = Network::new(
        ctx,
        &NetParams::<f32>::init(NetConfig::new(Cell::GRU, 3, 4), 2).unwrap(),
    )
    .unwrap();
    let c0 = Tensor::zeros(ctx, "c0", &[1, 2, 4]).unwrap();
    named(gru.forward(&x, None, Some(&c0), None, Mode::Training), "c0");
    // A trace of another network, and a gradient of the wrong shape.
    let out = net.forward(&x, None, None, None, Mode::Training).unwrap();
    let other = Network::new(ctx, &NetParams::<f32>::init(config, 3).unwrap()).unwrap();
    let d = Tensor::zeros(ctx, "d", &[5, 2, 8]).unwrap();
    match other.backward(out.trace.as_ref().unwrap(), &d, None, None) {
        Err(Error::Invalid { arg: "trace", .. }) => {}
        r => panic!("foreign trace: {r:?}"),
    }
    match net.backward(
        out.trace.as_ref().unwrap(),
        &Tensor::zeros(ctx, "d", &[5, 2, 4]).unwrap(),
        None,
        None,
    ) {
        Err(Error::Shape {
            arg: "d_output", ..
        }) => {}
        r => panic!("d_output: {r:?}"),
    }
}

/// Truncated backpropagation through time: a long sequence run in chunks, each chunk's
/// `h_n`/`c_n` (device tensors) the next one's `h0`/`c0`, gives the outputs of one run
/// over the whole sequence, on the GPU as on the CPU; each chunk's backward stops at its
/// own initial state (its `dh0` is simply not carried on).
#[test]
fn chunks_carry_the_state() {
    let Some(ctx) = ctx() else { return };
    for cell in [Cell::Lstm, Cell::GRU] {
        let config = NetConfig {
            num_layers: 2,
            ..NetConfig::new(cell, 3, 5)
        };
        let p = NetParams::<f32>::init(config, 8).unwrap();
        let mut rng = SplitMix64(3);
        let x = draw(&mut rng, (12, 2, 3)).mapv(|v| v as f32);
        let whole = cpu::forward(&p, x.view(), None, None, None).unwrap();
        let net = Network::new(ctx, &p).unwrap();
        let (mut h, mut c): (Option<Tensor>, Option<Tensor>) = (None, None);
        for k in 0..3 {
            let chunk = x.slice(ndarray::s![4 * k..4 * (k + 1), .., ..]).to_owned();
            let xt = Tensor::from_array(ctx, "x", &chunk).unwrap();
            let out = net
                .forward(&xt, h.as_ref(), c.as_ref(), None, Mode::Training)
                .unwrap();
            let got = out.output.to_array().unwrap();
            let want = whole.output.slice(ndarray::s![4 * k..4 * (k + 1), .., ..]);
            let err = got
                .iter()
                .zip(want.iter())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-5, "{cell:?} chunk {k}: {err}");
            // The chunk's backward runs; its dh0 is where the truncation cuts.
            let d = Tensor::zeros(ctx, "d", &[4, 2, 5]).unwrap();
            net.backward(out.trace.as_ref().unwrap(), &d, None, None)
                .unwrap();
            h = Some(out.h_n);
            c = out.c_n;
        }
    }
}

/// The flat parameters and the device relayout: `set_params` (the flat vector written,
/// then the step layouts derived on the device by index gathers) gives bit for bit the
/// forward and gradients of a network uploaded from the same weights (laid out on the
/// host), for every cell, stacked and bidirectional, with and without biases; the flat
/// gradient is in the parameters' layout, named as PyTorch names them; a trace from
/// before the sync is refused.
#[test]
fn synced_weights_equal_uploaded_weights() {
    let Some(ctx) = ctx() else { return };
    for cell in Cell::ALL {
        for (layers, bi, bias) in [
            (2, true, true),
            (1, false, false),
            (2, false, true),
            (2, true, false),
        ] {
            let config = NetConfig {
                num_layers: layers,
                bidirectional: bi,
                bias,
                ..NetConfig::new(cell, 3, 5)
            };
            let label = format!("{cell:?} {}", config.describe());
            let (p1, p2) = (
                NetParams::<f32>::init(config, 1).unwrap(),
                NetParams::<f32>::init(config, 2).unwrap(),
            );
            let mut rng = SplitMix64(4);
            let x = draw(&mut rng, (4, 3, 3)).mapv(|v| v as f32);
            let xt = Tensor::from_array(ctx, "x", &x).unwrap();
            let d = Tensor::from_array(
                ctx,
                "d",
                &draw(&mut rng, (4, 3, config.directions() * 5)).mapv(|v| v as f32),
            )
            .unwrap();
            let run = |net: &Network| {
                let out = net.forward(&xt, None, None, None, Mode::Training).unwrap();
                let g = net
                    .backward(out.trace.as_ref().unwrap(), &d, None, None)
                    .unwrap();
                (
                    out.output.to_array().unwrap(),
                    out.h_n.to_array().unwrap(),
                    g.dx.to_array().unwrap(),
                    g.flat()
                        .iter()
                        .flat_map(|t| t.to_array().unwrap().into_iter())
                        .collect::<Vec<f32>>(),
                    g.named().unwrap(),
                )
            };
            let want = run(&Network::new(ctx, &p2).unwrap());
            let net = Network::new(ctx, &p1).unwrap();
            let stale = net.forward(&xt, None, None, None, Mode::Training).unwrap();
            net.set_params(&p2).unwrap();
            assert_eq!(net.version(), 1, "{label}");
            let got = run(&net);
            assert_eq!(got.0, want.0, "{label}: output");
            assert_eq!(got.1, want.1, "{label}: h_n");
            assert_eq!(got.2, want.2, "{label}: dx");
            assert_eq!(got.3, want.3, "{label}: flat gradient");
            assert_eq!(net.to_params().unwrap(), p2, "{label}: to_params");
            // The flat gradients are the named gradients end to end, in the parameters'
            // order, names and sizes, one flat tensor per layer.
            let named = net.named_parameters();
            assert_eq!(named.len(), got.4.len(), "{label}");
            let mut at = 0;
            for ((name, t), (gname, g)) in named.iter().zip(&got.4) {
                assert_eq!(name, gname, "{label}");
                assert_eq!(t.len(), g.len(), "{label}: {name}");
                assert_eq!(&got.3[at..at + g.len()], &g[..], "{label}: {name}");
                at += g.len();
            }
            let per_layer: Vec<usize> = net.parameters().iter().map(|t| t.len()).collect();
            assert_eq!(per_layer.len(), layers, "{label}");
            assert_eq!(at, per_layer.iter().sum::<usize>(), "{label}");
            match net.backward(stale.trace.as_ref().unwrap(), &d, None, None) {
                Err(Error::Invalid { arg: "trace", .. }) => {}
                r => panic!("{label}: stale trace: {r:?}"),
            }
        }
    }
}
