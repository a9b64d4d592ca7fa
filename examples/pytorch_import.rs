//! Load a PyTorch `nn.LSTM` (or `nn.GRU`, `nn.RNN`) saved with safetensors, run a batch of
//! variable-length sequences on the GPU, and print the outputs and `h_n` beside the CPU
//! path's.
//!
//! ```text
//! cargo run --release --example pytorch_import                  # the bundled 2-layer bidirectional LSTM
//! cargo run --release --example pytorch_import -- PATH PREFIX CELL I H LAYERS BIDIRECTIONAL
//! cargo run --release --example pytorch_import -- m.safetensors rnn. lstm 5 4 2 true
//! ```
//!
//! The file: in Python, for a module `m = nn.LSTM(5, 4, num_layers=2, bidirectional=True)`
//! inside a model (`model.rnn = m`):
//!
//! ```python
//! from safetensors.torch import save_file
//! save_file({k: v.contiguous() for k, v in model.state_dict().items()}, "m.safetensors")
//! ```
//!
//! and `rnn.` is the prefix of the module's keys (`rnn.weight_ih_l0`, …); f32, f16,
//! bf16 and f64 tensors are read. Without arguments the example loads
//! `tests/fixtures/lstm_l2_bi_f32.safetensors` (written by `tools/torch_fixtures.py`,
//! prefix `encoder.rnn.`).

use ndarray::Array3;
use wgpu_rnn::gpu::{Context, Mode, Network, Tensor};
use wgpu_rnn::net::{cpu, NetConfig, NetParams};
use wgpu_rnn::{Cell, SplitMix64};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bundled = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lstm_l2_bi_f32.safetensors"
    );
    let arg = |k: usize, default: &str| args.get(k).cloned().unwrap_or(default.to_string());
    let path = arg(0, bundled);
    let prefix = arg(1, "encoder.rnn.");
    let cell = match arg(2, "lstm").as_str() {
        "lstm" => Cell::Lstm,
        "gru" => Cell::GRU,
        "rnn" => Cell::Rnn,
        other => return Err(format!("cell {other:?}: lstm, gru or rnn").into()),
    };
    let config = NetConfig {
        cell,
        input_size: arg(3, "5").parse()?,
        hidden_size: arg(4, "4").parse()?,
        num_layers: arg(5, "2").parse()?,
        bidirectional: arg(6, "true").parse()?,
        bias: true,
        dropout: 0.0,
    };
    let params = NetParams::<f32>::load(config, &path, &prefix)?;
    println!("loaded {path} (prefix {prefix:?}): {}", config.describe());

    // A batch of three sequences of lengths 5, 2 and 4, padded to T = 5.
    let (t, b) = (5, 3);
    let lengths = [5, 2, 4];
    let mut rng = SplitMix64(1);
    let x = Array3::from_shape_simple_fn((t, b, config.input_size), || {
        rng.next_f64() as f32 * 2.0 - 1.0
    });

    let ctx = Context::new()?;
    println!("adapter: {}", ctx.describe());
    let net = Network::new(&ctx, &params)?;
    let out = net.forward(
        &Tensor::from_array(&ctx, "x", &x)?,
        None,
        None,
        Some(&lengths),
        Mode::Inference,
    )?;
    let output = out.output.to_array()?;
    let h_n = out.h_n.to_array()?;
    let want = cpu::forward(&params, x.view(), None, None, Some(&lengths))?;

    println!(
        "output [T, B, D·H] = {:?} (zero past each sequence's end):",
        output.shape()
    );
    for (row, len) in lengths.iter().enumerate() {
        println!("  sequence {row} (length {len}):");
        for step in 0..t {
            let v: Vec<String> = output
                .slice(ndarray::s![step, row, ..])
                .iter()
                .map(|v| format!("{v:+.4}"))
                .collect();
            println!("    t={step}: {}", v.join(" "));
        }
    }
    println!("h_n [L·D, B, H] = {:?}:", h_n.shape());
    for k in 0..h_n.shape()[0] {
        let v: Vec<String> = h_n
            .slice(ndarray::s![k, .., ..])
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| format!("{v:+.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        println!(
            "  layer {} {}: {}",
            k / config.directions(),
            ["forward", "reverse"][k % 2],
            v.join(" | ")
        );
    }
    let err = output
        .iter()
        .zip(want.output.iter())
        .chain(h_n.iter().zip(want.h_n.iter()))
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("max |GPU − CPU| over output and h_n: {err:.2e}");
    Ok(())
}
