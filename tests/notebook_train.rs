//! The notebook's training loop (`model`: one name per step, `optimize` = forward with
//! the loss summed over steps, backward, `clip` to 5, `update_parameters`, the last
//! hidden state carried to the next name) run for K steps by the notebook's CPU code
//! and through the library's device API — one-hot input, a tanh network, the fused head
//! with `Reduction::Sum`, `clip_grad_value`, SGD, `sync_weights` — gives the same losses
//! and the same parameters.

mod common;

use common::gpu::{ctx, gl_ctx};
use ndarray::{Array2, Array3};
use wgpu_rnn::cpu::{Optimizer, Reduction};
use wgpu_rnn::gpu::{self, Context, GpuHead, Mode, Network, Optim, Tensor};
use wgpu_rnn::net::{NetConfig, NetParams};
use wgpu_rnn::notebook::rnn_utils::{initialize_parameters, optimize};
use wgpu_rnn::notebook::RnnParameters;
use wgpu_rnn::{Cell, Head};

const NAMES: [&str; 5] = ["anna", "bob", "carla", "dave", "eve"];
const N_A: usize = 20;
const V: usize = 27;
const LR: f32 = 0.05;

/// The notebook's `X = [None] + chars`, `Y = chars + ['\n']` (`'\n'` = 0, `a` = 1, …).
fn example(name: &str) -> (Vec<Option<usize>>, Vec<usize>) {
    let ix: Vec<usize> = name.bytes().map(|c| (c - b'a' + 1) as usize).collect();
    let mut x = vec![None];
    x.extend(ix.iter().map(|&i| Some(i)));
    let mut y = ix;
    y.push(0);
    (x, y)
}

/// The notebook's parameters as a network (`b_hh` zero and left out of the updates: the
/// notebook has one bias) and a head.
fn to_library(p: &RnnParameters<f32>) -> (NetParams<f32>, Head<f32>) {
    let config = NetConfig::new(Cell::Rnn, V, N_A);
    let mut net = NetParams::<f32>::init(config, 0).unwrap();
    let l = &mut net.layers[0];
    l.w_ih.assign(&p.wax);
    l.w_hh.assign(&p.waa);
    l.b_ih.assign(&p.ba.column(0));
    l.b_hh.fill(0.0);
    let head = Head::new(p.wya.clone(), p.by.column(0).to_owned()).unwrap();
    (net, head)
}

fn check(ctx: &Context, label: &str) {
    let mut nb: RnnParameters<f32> = initialize_parameters(N_A, V, V).unwrap();
    // Larger weights than the notebook's 0.01 draws, so that the steps move them.
    for w in [&mut nb.wax, &mut nb.waa, &mut nb.wya] {
        w.mapv_inplace(|v| v * 30.0);
    }
    let initial = nb.clone();
    let (np, head) = to_library(&nb);
    let net = Network::new(ctx, &np).unwrap();
    let head = GpuHead::new(ctx, &head).unwrap();
    let optim = Optim::new(ctx, Optimizer::Sgd { lr: LR }).unwrap();
    let mut a_prev = Array2::<f32>::zeros((N_A, 1));
    let mut h: Option<Tensor> = None;
    for j in 0..12 {
        let (x, y) = example(NAMES[j % NAMES.len()]);
        let (want, _, a_last) = optimize(&x, &y, a_prev.view(), &mut nb, LR).unwrap();
        a_prev = a_last;
        // The same step through the library on the device.
        let mut onehot = Array3::<f32>::zeros((x.len(), 1, V));
        for (t, i) in x.iter().enumerate() {
            if let Some(i) = i {
                onehot[(t, 0, *i)] = 1.0;
            }
        }
        let xt = Tensor::from_array(ctx, "x", &onehot).unwrap();
        let f = net
            .forward(&xt, h.as_ref(), None, None, Mode::Training)
            .unwrap();
        let targets = Array2::from_shape_vec((y.len(), 1), y.clone()).unwrap();
        let loss = head
            .loss(&f.output, targets.view(), None, Reduction::Sum)
            .unwrap();
        let g = net
            .backward(f.trace.as_ref().unwrap(), &loss.dh, None, None)
            .unwrap();
        let pick = |named: Vec<(String, Tensor)>| -> Vec<Tensor> {
            named
                .into_iter()
                .filter(|(n, _)| n != "bias_hh_l0")
                .map(|t| t.1)
                .collect()
        };
        let [w_y, b_y] = head.parameters();
        let mut params = pick(net.named_parameters());
        params.extend([w_y, b_y]);
        let mut grads = pick(g.named_tensors());
        grads.extend([loss.dw_y, loss.db_y]);
        let grads: Vec<&Tensor> = grads.iter().collect();
        gpu::clip_grad_value(&grads, 5.0).unwrap();
        optim
            .step(&params.iter().collect::<Vec<_>>(), &grads)
            .unwrap();
        net.sync_weights().unwrap();
        h = Some(f.h_n);
        let got = loss.loss.to_array().unwrap()[0];
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{label} step {j}: loss {got} vs the notebook's {want}"
        );
    }
    // The parameters after K steps.
    let p = net.to_params().unwrap();
    let l = &p.layers[0];
    let [w_y, b_y] = head.parameters();
    let w_y = w_y.to_array().unwrap();
    let b_y = b_y.to_array().unwrap();
    let pairs: [(&str, Vec<f32>, Vec<f32>); 5] = [
        (
            "Wax",
            l.w_ih.iter().copied().collect(),
            nb.wax.iter().copied().collect(),
        ),
        (
            "Waa",
            l.w_hh.iter().copied().collect(),
            nb.waa.iter().copied().collect(),
        ),
        ("b", l.b_ih.to_vec(), nb.ba.iter().copied().collect()),
        (
            "Wya",
            w_y.iter().copied().collect(),
            nb.wya.iter().copied().collect(),
        ),
        (
            "by",
            b_y.iter().copied().collect(),
            nb.by.iter().copied().collect(),
        ),
    ];
    for (name, got, want) in pairs {
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(
                0f32,
                |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
            )
            / scale;
        assert!(err < 2e-4, "{label} {name}: {err:e}");
    }
    assert!(
        l.b_hh.iter().all(|&v| v == 0.0),
        "{label}: b_hh is not a notebook parameter and stays zero"
    );
    assert!(
        (&nb.wya - &initial.wya).iter().any(|d| d.abs() > 1e-3),
        "{label}: the steps moved the parameters"
    );
}

#[test]
fn notebook_loop_on_the_device_equals_the_notebook() {
    if let Some(ctx) = ctx() {
        check(ctx, "default adapter");
    }
}

#[test]
fn notebook_loop_on_gl_equals_the_notebook() {
    if let Some(ctx) = gl_ctx() {
        check(ctx, "GL");
    }
}
