//! PyTorch parity: the fixtures under `tests/fixtures/` (written by
//! `tools/torch_fixtures.py` from `nn.RNN`, `nn.LSTM` and `nn.GRU` in float64: 1 and 2
//! layers, one and two directions, with and without biases, packed variable-length
//! batches, nonzero h0/c0) loaded through the library's safetensors reader, run forward
//! and backward on the f64 CPU path, and compared with PyTorch's outputs, final states
//! and every gradient. No PyTorch needed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD, IxDyn};
use safetensors::SafeTensors;
use wgpu_rnn::net::{cpu, NetConfig, NetParams};
use wgpu_rnn::{Cell, Error};

/// A difference that is not a number counts as infinitely large (`f64::max` would skip
/// it and let a NaN-poisoned result pass).
fn nan_inf(d: f64) -> f64 {
    if d.is_nan() {
        f64::INFINITY
    } else {
        d
    }
}

/// PyTorch's float64 against the CPU path's: every element within this.
const TOL: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One fixture: its config, lengths and every tensor by name (as f64).
struct Fixture {
    config: NetConfig,
    lengths: Option<Vec<usize>>,
    tensors: HashMap<String, ArrayD<f64>>,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let bytes = std::fs::read(fixtures().join(format!("{name}.safetensors"))).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        let mut lengths = None;
        for (k, t) in st.tensors() {
            let shape = IxDyn(t.shape());
            match t.dtype() {
                safetensors::Dtype::F64 => {
                    let v: Vec<f64> = t
                        .data()
                        .chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    tensors.insert(k, ArrayD::from_shape_vec(shape, v).unwrap());
                }
                safetensors::Dtype::I64 => {
                    let v: Vec<usize> = t
                        .data()
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
                        .collect();
                    lengths = Some(v);
                }
                other => panic!("{name}: {k} has dtype {other:?}"),
            }
        }
        let cell = match meta["mode"].as_str() {
            "RNN_TANH" => Cell::Rnn,
            "LSTM" => Cell::Lstm,
            "GRU" => Cell::GRU,
            m => panic!("{name}: mode {m}"),
        };
        let num = |k: &str| meta[k].parse::<usize>().unwrap();
        let config = NetConfig {
            cell,
            input_size: num("input_size"),
            hidden_size: num("hidden_size"),
            num_layers: num("num_layers"),
            bidirectional: meta["bidirectional"] == "true",
            bias: meta["bias"] == "true",
            dropout: 0.0,
        };
        Fixture {
            config,
            lengths: if meta["packed"] == "true" {
                lengths
            } else {
                None
            },
            tensors,
        }
    }

    /// The module's own tensors (the file also holds inputs, outputs and gradients) as
    /// a safetensors file of their own, keys after `prefix`, as `torch.save_file` of
    /// `module.state_dict()` writes it.
    fn state_dict(&self, prefix: &str) -> Vec<u8> {
        let weights: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .filter(|(k, _)| k.starts_with("weight_") || k.starts_with("bias_"))
            .map(|(k, a)| {
                let bytes = a.iter().flat_map(|v| v.to_le_bytes()).collect();
                (format!("{prefix}{k}"), a.shape().to_vec(), bytes)
            })
            .collect();
        let views = weights.iter().map(|(k, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, shape.clone(), bytes);
            (k.clone(), view.unwrap())
        });
        safetensors::serialize(views, None).unwrap()
    }

    fn get3(&self, k: &str) -> Option<Array3<f64>> {
        self.tensors
            .get(k)
            .map(|a| a.clone().into_dimensionality().unwrap())
    }
}

/// `max |got − want|` within [`TOL`].
fn close(label: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max(nan_inf((a - b).abs())));
    assert!(err <= TOL, "{label}: max |got − want| = {err:e} > {TOL:e}");
}

fn check(name: &str) {
    let f = Fixture::load(name);
    let p = NetParams::<f64>::from_safetensors(f.config, &f.state_dict(""), "").unwrap();
    let x = f.get3("input").unwrap();
    let h0 = f.get3("h0").unwrap();
    let c0 = f.get3("c0");
    let tr = cpu::forward(
        &p,
        x.view(),
        Some(h0.view()),
        c0.as_ref().map(|a| a.view()),
        f.lengths.as_deref(),
    )
    .unwrap();
    let flat = |a: &Array3<f64>| a.iter().copied().collect::<Vec<_>>();
    let want = |k: &str| f.tensors[k].iter().copied().collect::<Vec<_>>();
    close(
        &format!("{name} output"),
        &flat(&tr.output),
        &want("output"),
    );
    close(&format!("{name} h_n"), &flat(&tr.h_n), &want("h_n"));
    if let Some(c_n) = &tr.c_n {
        close(&format!("{name} c_n"), &flat(c_n), &want("c_n"));
    }
    let g = cpu::backward(
        &p,
        &tr,
        f.get3("grad_output").unwrap().view(),
        Some(f.get3("grad_h_n").unwrap().view()),
        f.get3("grad_c_n").as_ref().map(|a| a.view()),
    )
    .unwrap();
    close(
        &format!("{name} grad input"),
        &flat(&g.dx),
        &want("grad.input"),
    );
    close(&format!("{name} grad h0"), &flat(&g.dh0), &want("grad.h0"));
    if let Some(dc0) = &g.dc0 {
        close(&format!("{name} grad c0"), &flat(dc0), &want("grad.c0"));
    }
    let named = g.named();
    let params = f
        .tensors
        .keys()
        .filter(|k| {
            k.starts_with("grad.") && !["grad.input", "grad.h0", "grad.c0"].contains(&k.as_str())
        })
        .count();
    assert_eq!(named.len(), params, "{name}: parameter gradients");
    for (k, v) in &named {
        close(&format!("{name} grad {k}"), v, &want(&format!("grad.{k}")));
    }
}

#[test]
fn cpu_matches_pytorch_on_every_fixture() {
    let mut n = 0;
    for cell in ["rnn", "lstm", "gru"] {
        for config in [
            "l1_uni",
            "l2_bi",
            "l2_uni_nobias",
            "l1_bi_nobias",
            "l2_bi_packed",
            "l1_uni_packed",
        ] {
            check(&format!("{cell}_{config}"));
            n += 1;
        }
    }
    assert_eq!(n, 18);
}

/// The reduced-precision files (f32, f16, bf16, under the key prefix `encoder.rnn.`)
/// load to the float64 case's weights within each type's rounding; the weights written
/// back out (f64 and f32) read back the same.
#[test]
fn weights_load_in_every_dtype_and_round_trip() {
    let f = Fixture::load("lstm_l2_bi");
    let exact = NetParams::<f64>::from_safetensors(f.config, &f.state_dict(""), "").unwrap();
    for (dtype, tol) in [("f32", 1e-7), ("f16", 2e-3), ("bf16", 1e-2)] {
        let path = fixtures().join(format!("lstm_l2_bi_{dtype}.safetensors"));
        let p = NetParams::<f64>::load(f.config, &path, "encoder.rnn.").unwrap();
        for (a, b) in p.layers.iter().zip(&exact.layers) {
            let err = (&a.w_ih - &b.w_ih)
                .iter()
                .fold(0.0f64, |m, v| m.max(nan_inf(v.abs())));
            assert!(err <= tol, "{dtype}: w_ih off by {err:e}");
            let err = (&a.b_hh - &b.b_hh)
                .iter()
                .fold(0.0f64, |m, v| m.max(nan_inf(v.abs())));
            assert!(err <= tol, "{dtype}: b_hh off by {err:e}");
        }
        // Without the prefix every key is unexpected, and the error says which prefix.
        match NetParams::<f64>::load(f.config, &path, "") {
            Err(Error::Weights { key, msg }) => {
                assert_eq!(key, "encoder.rnn.bias_hh_l0");
                assert!(msg.contains("prefix `encoder.rnn.`"), "{msg}");
            }
            other => panic!("{dtype} without prefix: {other:?}"),
        }
    }
    let back =
        NetParams::<f64>::from_safetensors(f.config, &exact.to_safetensors("m.").unwrap(), "m.")
            .unwrap();
    assert_eq!(back, exact);
    let p32 = exact.cast::<f32>();
    let back32 =
        NetParams::<f32>::from_safetensors(f.config, &p32.to_safetensors("").unwrap(), "").unwrap();
    assert_eq!(back32, p32);
}

/// A file that disagrees with the network: each mismatch is an `Error::Weights` naming
/// the key, with what was expected.
#[test]
fn mismatched_weights_name_the_key() {
    let f = Fixture::load("gru_l2_bi");
    let sd = f.state_dict("");
    let expect = |config: NetConfig, bytes: &[u8], key: &str, words: &str| {
        match NetParams::<f64>::from_safetensors(config, bytes, "") {
            Err(Error::Weights { key: k, msg }) => {
                assert_eq!(k, key, "{msg}");
                assert!(msg.contains(words), "{key}: {msg}");
            }
            other => panic!("expected an error naming {key}, got {other:?}"),
        }
    };
    let c = f.config;
    expect(
        NetConfig { num_layers: 1, ..c },
        &sd,
        "bias_hh_l1",
        "num_layers = 1",
    );
    expect(
        NetConfig { num_layers: 3, ..c },
        &sd,
        "weight_ih_l2",
        "missing",
    );
    expect(
        NetConfig {
            bidirectional: false,
            ..c
        },
        &sd,
        "bias_hh_l0_reverse",
        "bidirectional",
    );
    expect(
        NetConfig { bias: false, ..c },
        &sd,
        "bias_hh_l0",
        "bias = false",
    );
    expect(
        NetConfig {
            hidden_size: 5,
            ..c
        },
        &sd,
        "weight_ih_l0",
        "[15, 5]",
    );
    expect(
        NetConfig {
            cell: Cell::Lstm,
            ..c
        },
        &sd,
        "weight_ih_l0",
        "[16, 5]",
    );
    expect(
        NetConfig { input_size: 6, ..c },
        &sd,
        "weight_ih_l0",
        "[12, 6]",
    );
    // An extra key of another kind, and a tensor of an integer type.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = Vec::new();
    let st = SafeTensors::deserialize(&sd).unwrap();
    for (k, t) in st.tensors() {
        tensors.push((k, t.shape().to_vec(), t.data().to_vec(), t.dtype()));
    }
    let write = |drop: &str, extra: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)>| {
        let all: Vec<_> = tensors
            .iter()
            .filter(|(k, ..)| k != drop)
            .cloned()
            .chain(extra)
            .collect();
        let views = all.iter().map(|(k, s, b, d)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        });
        safetensors::serialize(views, None).unwrap()
    };
    let extra = write(
        "",
        vec![(
            "weight_ho_l0".into(),
            vec![1],
            vec![0; 8],
            safetensors::Dtype::F64,
        )],
    );
    expect(c, &extra, "weight_ho_l0", "unexpected");
    let ints = write(
        "weight_hh_l1",
        vec![(
            "weight_hh_l1".into(),
            vec![12, 4],
            vec![0; 12 * 4 * 8],
            safetensors::Dtype::I64,
        )],
    );
    expect(c, &ints, "weight_hh_l1", "dtype");
    match NetParams::<f64>::from_safetensors(c, b"not a file", "") {
        Err(Error::Invalid { arg: "bytes", .. }) => {}
        other => panic!("garbage bytes: {other:?}"),
    }
}

/// Bad calls of the CPU network: lengths of 0 or above T, states of the wrong shape, a
/// cell state for a cell without one, gradients of the wrong shape.
#[test]
fn bad_network_input_names_the_argument() {
    let f = Fixture::load("lstm_l2_bi_packed");
    let p = NetParams::<f64>::from_safetensors(f.config, &f.state_dict(""), "").unwrap();
    let x = f.get3("input").unwrap();
    let (t, b) = (x.dim().0, x.dim().1);
    let named = |r: Result<cpu::NetTrace<f64>, Error>, arg: &str| match r {
        Err(Error::Shape { arg: a, .. }) | Err(Error::Invalid { arg: a, .. }) if a == arg => {}
        other => panic!("expected an error naming {arg}, got {other:?}"),
    };
    for bad in [vec![0, 1, 2, 3], vec![1, t + 1, 2, 3], vec![1, 2, 3]] {
        named(
            cpu::forward(&p, x.view(), None, None, Some(&bad)),
            "lengths",
        );
    }
    let wrong = Array3::<f64>::zeros((3, b, 4));
    named(
        cpu::forward(&p, x.view(), Some(wrong.view()), None, None),
        "h0",
    );
    named(
        cpu::forward(&p, x.view(), None, Some(wrong.view()), None),
        "c0",
    );
    let x_bad = Array3::<f64>::zeros((t, b, 6));
    named(cpu::forward(&p, x_bad.view(), None, None, None), "x");
    let gru = Fixture::load("gru_l1_uni");
    let pg = NetParams::<f64>::from_safetensors(gru.config, &gru.state_dict(""), "").unwrap();
    let xg = gru.get3("input").unwrap();
    let c0 = Array3::<f64>::zeros((1, xg.dim().1, 4));
    named(
        cpu::forward(&pg, xg.view(), None, Some(c0.view()), None),
        "c0",
    );
    let tr = cpu::forward(&p, x.view(), None, None, Some(&[3, 5, 1, 4])).unwrap();
    match cpu::backward(&p, &tr, Array3::zeros((t, b, 4)).view(), None, None) {
        Err(Error::Shape {
            arg: "d_output", ..
        }) => {}
        other => panic!("d_output: {other:?}"),
    }
}

/// The CPU network's backward against f64 central differences of every input, initial
/// state and parameter, through 2 bidirectional layers over a variable-length batch,
/// for every cell (the lecture's GRU included), without and with dropout between the
/// layers (a fixed mask for a fixed seed).
#[test]
fn network_gradients_match_finite_differences() {
    use wgpu_rnn::SplitMix64;
    let (t, b, i, h) = (3, 3, 2, 2);
    let lengths = [3, 1, 2];
    let cases = Cell::ALL
        .into_iter()
        .map(|c| (c, 0.0))
        .chain([(Cell::Lstm, 0.4), (Cell::GRU, 0.4)]);
    for (k, (cell, dropout)) in cases.enumerate() {
        let config = NetConfig {
            cell,
            input_size: i,
            hidden_size: h,
            num_layers: 2,
            bidirectional: true,
            bias: true,
            dropout,
        };
        let p = NetParams::<f64>::init(config, 40 + k as u64).unwrap();
        let mut rng = SplitMix64(90 + k as u64);
        let mut draw = |shape: (usize, usize, usize)| {
            Array3::from_shape_simple_fn(shape, || 2.0 * rng.next_f64() - 1.0)
        };
        let x = draw((t, b, i));
        let h0 = draw((4, b, h));
        let c0 = cell.has_cell_state().then(|| draw((4, b, h)));
        let (wo, wh, wc) = (draw((t, b, 2 * h)), draw((4, b, h)), draw((4, b, h)));
        let loss =
            |p: &NetParams<f64>, x: &Array3<f64>, h0: &Array3<f64>, c0: &Option<Array3<f64>>| {
                let tr = cpu::forward_train(
                    p,
                    x.view(),
                    Some(h0.view()),
                    c0.as_ref().map(|c| c.view()),
                    Some(&lengths),
                    5,
                )
                .unwrap();
                (&tr.output * &wo).sum()
                    + (&tr.h_n * &wh).sum()
                    + tr.c_n.as_ref().map_or(0.0, |c| (c * &wc).sum())
            };
        let tr = cpu::forward_train(
            &p,
            x.view(),
            Some(h0.view()),
            c0.as_ref().map(|c| c.view()),
            Some(&lengths),
            5,
        )
        .unwrap();
        assert_eq!(tr.dropout_seed(), (dropout > 0.0).then_some(5));
        let g = cpu::backward(
            &p,
            &tr,
            wo.view(),
            Some(wh.view()),
            c0.as_ref().map(|_| wc.view()),
        )
        .unwrap();
        let eps = 1e-5;
        let numeric = |f: &dyn Fn(f64, usize) -> f64, n: usize| -> Vec<f64> {
            (0..n)
                .map(|j| (f(eps, j) - f(-eps, j)) / (2.0 * eps))
                .collect()
        };
        let check = |label: &str, a: Vec<f64>, n: Vec<f64>| {
            let scale = n.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(&n)
                .fold(0.0f64, |m, (x, y)| m.max(nan_inf((x - y).abs())))
                / scale;
            assert!(err < 1e-7, "{cell:?} d{label}: err {err:e}\n{a:?}\n{n:?}");
        };
        let bump3 = |a: &Array3<f64>, e: f64, j: usize| {
            let mut a = a.clone();
            a.as_slice_mut().unwrap()[j] += e;
            a
        };
        check(
            "x",
            g.dx.iter().copied().collect(),
            numeric(&|e, j| loss(&p, &bump3(&x, e, j), &h0, &c0), x.len()),
        );
        check(
            "h0",
            g.dh0.iter().copied().collect(),
            numeric(&|e, j| loss(&p, &x, &bump3(&h0, e, j), &c0), h0.len()),
        );
        if let (Some(c0v), Some(dc0)) = (&c0, &g.dc0) {
            let f = |e: f64, j: usize| loss(&p, &x, &h0, &Some(bump3(c0v, e, j)));
            check("c0", dc0.iter().copied().collect(), numeric(&f, c0v.len()));
        }
        for (name, analytic) in g.named() {
            let f = |e: f64, j: usize| {
                let mut q = p.clone();
                let (l, d) = (
                    name.contains("_l1") as usize,
                    name.ends_with("_reverse") as usize,
                );
                let layer = &mut q.layers[l * 2 + d];
                let v = match &name[..9] {
                    "weight_ih" => layer.w_ih.as_slice_mut().unwrap(),
                    "weight_hh" => layer.w_hh.as_slice_mut().unwrap(),
                    "bias_ih_l" => layer.b_ih.as_slice_mut().unwrap(),
                    _ => layer.b_hh.as_slice_mut().unwrap(),
                };
                v[j] += e;
                loss(&q, &x, &h0, &c0)
            };
            let n = analytic.len();
            check(&name, analytic, numeric(&f, n));
        }
    }
}

mod common;

/// The GPU network (f32) against PyTorch's float64 on a fixture, forward and backward,
/// outputs NaN-poisoned first.
fn check_gpu(ctx: &wgpu_rnn::gpu::Context, name: &str) {
    use wgpu_rnn::gpu::{Mode, Network, Tensor};
    let f = Fixture::load(name);
    let p = NetParams::<f64>::from_safetensors(f.config, &f.state_dict(""), "").unwrap();
    let net = Network::new(ctx, &p.cast::<f32>()).unwrap();
    let up = |k: &str| {
        f.get3(k)
            .map(|a| Tensor::from_array(ctx, "t", &a.mapv(|v| v as f32)).unwrap())
    };
    let (x, h0, c0) = (up("input").unwrap(), up("h0"), up("c0"));
    let out = net
        .forward(
            &x,
            h0.as_ref(),
            c0.as_ref(),
            f.lengths.as_deref(),
            Mode::Training,
        )
        .unwrap();
    let close32 = |label: &str, got: &wgpu_rnn::gpu::Tensor, key: &str| {
        let g: Vec<f64> = got.to_array().unwrap().iter().map(|&v| v as f64).collect();
        let w: Vec<f64> = f.tensors[key].iter().copied().collect();
        assert_eq!(g.len(), w.len(), "{name} {label}: length");
        let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let err = g
            .iter()
            .zip(&w)
            .fold(0.0f64, |m, (a, b)| m.max(nan_inf((a - b).abs())))
            / scale;
        assert!(err <= 2e-4, "{name} GPU {label}: err {err:e}");
    };
    close32("output", &out.output, "output");
    close32("h_n", &out.h_n, "h_n");
    if let Some(c_n) = &out.c_n {
        close32("c_n", c_n, "c_n");
    }
    let g = net
        .backward(
            out.trace.as_ref().unwrap(),
            &up("grad_output").unwrap(),
            up("grad_h_n").as_ref(),
            up("grad_c_n").as_ref(),
        )
        .unwrap();
    close32("grad input", &g.dx, "grad.input");
    close32("grad h0", &g.dh0, "grad.h0");
    if let Some(dc0) = &g.dc0 {
        close32("grad c0", dc0, "grad.c0");
    }
    let named = g.named().unwrap();
    assert_eq!(
        named.len(),
        p.layers.len() * (2 + 2 * f.config.bias as usize)
    );
    for (k, v) in named {
        let w: Vec<f64> = f.tensors[&format!("grad.{k}")].iter().copied().collect();
        assert_eq!(v.len(), w.len(), "{name} GPU grad {k}: length");
        let scale = w.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let err = v
            .iter()
            .zip(&w)
            .fold(0.0f64, |m, (a, b)| m.max(nan_inf((*a as f64 - b).abs())))
            / scale;
        assert!(err <= 2e-4, "{name} GPU grad {k}: err {err:e}");
    }
}

#[test]
fn gpu_matches_pytorch_on_every_fixture() {
    for (backend, ctx) in [
        ("default", common::gpu::ctx()),
        ("GL", common::gpu::gl_ctx()),
    ] {
        let Some(ctx) = ctx else { continue };
        for cell in ["rnn", "lstm", "gru"] {
            for config in [
                "l1_uni",
                "l2_bi",
                "l2_uni_nobias",
                "l1_bi_nobias",
                "l2_bi_packed",
                "l1_uni_packed",
            ] {
                eprintln!("{backend}: {cell}_{config}");
                check_gpu(ctx, &format!("{cell}_{config}"));
            }
        }
    }
}
