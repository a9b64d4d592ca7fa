//! A character-level language model of first names, trained on the GPU (or the CPU
//! path) and sampled — the course notebook's next exercise, with the library's pieces:
//! an embedding, an LSTM/GRU/RNN network, the fused softmax cross-entropy head, global
//! norm clipping and Adam, all on the device; nothing is read back inside the loop but
//! the loss every `--log-every` steps.
//!
//! ```text
//! cargo run --release --example char_lm                      # defaults: LSTM, 1 layer
//! cargo run --release --example char_lm -- --cell gru --steps 600 --device cpu
//! cargo run --release --example char_lm -- --resume target/char_lm/checkpoint.safetensors --steps 200
//! ```
//!
//! The default corpus, `examples/data/names.txt`, is the US Census Bureau's 1990 lists
//! of frequent first names (public domain), as shipped in the `names` package on PyPI;
//! see the file's header. Writes the loss chart (`loss.svg`) and a checkpoint in
//! safetensors under PyTorch's names (`checkpoint.safetensors`) into `--out`.

#[path = "../benches/support/chart.rs"]
mod chart;

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use wgpu_rnn::cpu::{OptimState, Optimizer};
use wgpu_rnn::gpu::Context;
use wgpu_rnn::lm::{Batches, Checkpoint, Corpus, CpuLm, GpuLm, LmConfig, LmParams, SampleOptions};
use wgpu_rnn::Cell;

/// The embedded corpus: one name per line after a `# ` header.
const NAMES: &str = include_str!("data/names.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CellArg {
    Lstm,
    Gru,
    Rnn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptArg {
    Sgd,
    Momentum,
    Adam,
    Adamw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceArg {
    /// The GPU when an adapter is found, else the CPU path.
    Auto,
    Gpu,
    Cpu,
}

/// Trains a character-level language model on names and samples new ones.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The recurrent cell.
    #[arg(long, value_enum, default_value_t = CellArg::Lstm)]
    cell: CellArg,
    /// Stacked layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Embedding size.
    #[arg(long, default_value_t = 32)]
    embed: usize,
    /// Steps per training chunk (truncated backpropagation through time).
    #[arg(long, default_value_t = 32)]
    seq: usize,
    /// Parallel streams of the corpus per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// The optimizer (PyTorch's defaults otherwise; momentum 0.9).
    #[arg(long, value_enum, default_value_t = OptArg::Adam)]
    optimizer: OptArg,
    /// Clip the gradients' global norm to this (0: no clipping).
    #[arg(long, default_value_t = 5.0)]
    clip: f32,
    /// Training steps (after a resumed checkpoint's).
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// A text file to train on instead of the embedded names.
    #[arg(long)]
    corpus: Option<std::path::PathBuf>,
    /// Seed of the initial weights and the samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Read the loss every this many steps (the only wait for the device).
    #[arg(long, default_value_t = 25)]
    log_every: usize,
    /// Print samples every this many steps (0: only at the end).
    #[arg(long, default_value_t = 500)]
    sample_every: usize,
    /// Names per sample print.
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample from the k most likely characters only.
    #[arg(long)]
    top_k: Option<usize>,
    /// Resume from this checkpoint (its model shape and vocabulary; other model flags
    /// are ignored).
    #[arg(long)]
    resume: Option<std::path::PathBuf>,
    /// Where the chart and the checkpoint go.
    #[arg(long, default_value = "target/char_lm")]
    out: std::path::PathBuf,
}

/// The model on one of the two paths.
enum Model {
    Cpu(Box<CpuLm>),
    Gpu(Box<GpuLm>),
}

impl Model {
    fn sample(&self, start: usize, opts: &SampleOptions) -> wgpu_rnn::Result<Vec<usize>> {
        match self {
            Model::Cpu(m) => m.sample(start, None, None, opts),
            Model::Gpu(m) => m.sample(start, None, None, opts),
        }
    }
}

/// The embedded names, header dropped, one per line, ending in a newline.
fn embedded_names() -> String {
    let mut s: String = NAMES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    s.push('\n');
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.log_every == 0 || args.seq == 0 || args.batch == 0 {
        return Err("--log-every, --seq and --batch must be at least 1".into());
    }
    let text = match &args.corpus {
        Some(p) => std::fs::read_to_string(p)?,
        None => embedded_names(),
    };
    let resumed = match &args.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let corpus = match resumed.as_ref().and_then(|c| c.meta.get("chars")) {
        Some(chars) => Corpus::with_vocab(&text, chars.chars().collect())?,
        None => Corpus::new(&text)?,
    };
    let v = corpus.chars.len();
    let cell = match args.cell {
        CellArg::Lstm => Cell::Lstm,
        CellArg::Gru => Cell::GRU,
        CellArg::Rnn => Cell::Rnn,
    };
    let (params, state, carry, done) = match resumed {
        Some(ck) => {
            let done: usize = ck
                .meta
                .get("step")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (ck.params, ck.optim, ck.carry, done)
        }
        None => {
            let config = LmConfig::new(cell, v, args.embed, args.hidden, args.layers);
            (
                LmParams::init(config, args.seed)?,
                OptimState::default(),
                None,
                0,
            )
        }
    };
    let config = params.config;
    let opt = match args.optimizer {
        OptArg::Sgd => Optimizer::Sgd { lr: args.lr },
        OptArg::Momentum => Optimizer::Momentum {
            lr: args.lr,
            momentum: 0.9,
        },
        OptArg::Adam => Optimizer::adam(args.lr),
        OptArg::Adamw => Optimizer::adamw(args.lr),
    };
    let clip = (args.clip > 0.0).then_some(args.clip);
    let gpu = match args.device {
        DeviceArg::Cpu => None,
        DeviceArg::Gpu => Some(Context::new()?),
        DeviceArg::Auto => match Context::new() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("no GPU adapter ({e}); training on the CPU path");
                None
            }
        },
    };
    let mut model = match &gpu {
        Some(ctx) => {
            let mut m = GpuLm::new(ctx, &params, opt, clip, &state)?;
            m.set_carry(carry.as_ref())?;
            Model::Gpu(Box::new(m))
        }
        None => {
            let mut m = CpuLm::new(params, opt, clip, state)?;
            m.set_carry(carry);
            Model::Cpu(Box::new(m))
        }
    };
    let mut batches = Batches::new(&corpus.tokens, args.seq, args.batch)?;
    // A resumed run continues where the checkpoint's left off in the corpus.
    for _ in 0..done {
        batches.next_chunk();
    }
    println!(
        "{} tokens, vocabulary {v}; {} {} × {} layer(s), embedding {}, {} parameters; \
         seq {} × batch {}; {:?} lr {}, clip {:?}; on {}",
        corpus.tokens.len(),
        config.net.cell.name(),
        config.net.hidden_size,
        config.net.num_layers,
        config.embed,
        LmParams::init(config, 0)?
            .named()
            .iter()
            .map(|t| t.2.len())
            .sum::<usize>(),
        args.seq,
        args.batch,
        args.optimizer,
        args.lr,
        clip,
        gpu.as_ref().map_or("the CPU path".into(), |c| c.describe()),
    );
    let nl = corpus.token('\n').unwrap_or(0);
    let sample_opts = |k: usize| SampleOptions {
        temperature: args.temperature,
        top_k: args.top_k,
        max_len: 24,
        stop: corpus.token('\n'),
        seed: args.seed.wrapping_mul(1000).wrapping_add(k as u64),
    };
    let print_samples = |model: &Model, at: usize| -> wgpu_rnn::Result<()> {
        let names = (0..args.samples)
            .map(|k| Ok(corpus.decode(&model.sample(nl, &sample_opts(at * 100 + k))?)))
            .collect::<wgpu_rnn::Result<Vec<_>>>()?;
        let names: Vec<&str> = names.iter().map(|n| n.trim_end()).collect();
        println!("step {at}: {}", names.join(", "));
        Ok(())
    };

    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] step {pos}/{len} {msg}",
    )?);
    let ln2 = std::f64::consts::LN_2;
    let mut curve: Vec<(f64, f64)> = Vec::new();
    let mut host = Duration::ZERO;
    let start = Instant::now();
    let mut pending = Vec::new();
    for s in 0..args.steps {
        let step = done + s + 1;
        let (ids, targets, wrapped) = batches.next_chunk();
        let t0 = Instant::now();
        match &mut model {
            Model::Cpu(m) => {
                if wrapped {
                    m.reset_state();
                }
                let loss = m.step(ids.view(), targets.view())?;
                pending.push((step, loss as f64));
            }
            Model::Gpu(m) => {
                if wrapped {
                    m.reset_state();
                }
                let loss = m.step(ids.view(), targets.view())?;
                host += t0.elapsed();
                if step % args.log_every == 0 || s + 1 == args.steps {
                    // The only read: this waits for the device to finish the steps.
                    pending.push((step, loss.to_array()?[0] as f64));
                }
            }
        }
        if step % args.log_every == 0 || s + 1 == args.steps {
            let (at, loss) = *pending.last().expect("a loss");
            // The CPU path has every step's loss: the mean since the last read.
            let mean = pending.iter().map(|p| p.1).sum::<f64>() / pending.len() as f64;
            curve.push((at as f64, mean / ln2));
            pending.clear();
            let secs = start.elapsed().as_secs_f64();
            let tps = ((s + 1) * args.seq * args.batch) as f64 / secs;
            bar.set_message(format!(
                "loss {:.3} bits/char ({loss:.3} nats), {tps:.0} tokens/s",
                mean / ln2
            ));
        }
        bar.inc(1);
        if args.sample_every > 0 && step % args.sample_every == 0 && s + 1 < args.steps {
            bar.suspend(|| print_samples(&model, step))?;
        }
    }
    bar.finish();
    let secs = start.elapsed().as_secs_f64();
    let steps = args.steps.max(1);
    let tokens = (args.steps * args.seq * args.batch) as f64;
    let tail: Vec<f64> = curve.iter().rev().take(4).map(|p| p.1).collect();
    let final_bits = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    println!(
        "trained {} steps in {secs:.1} s: {:.0} tokens/s; final loss {final_bits:.3} bits per \
         character (the mean of the last {} reads; uniform over the vocabulary is {:.3})",
        args.steps,
        tokens / secs,
        tail.len(),
        (v as f64).log2()
    );
    if matches!(model, Model::Gpu(_)) {
        println!(
            "host time per step outside the GPU work (recording and submitting): {:.0} µs",
            host.as_secs_f64() * 1e6 / steps as f64
        );
    }
    print_samples(&model, done + args.steps)?;

    std::fs::create_dir_all(&args.out)?;
    let chart_path = args.out.join("loss.svg");
    chart::line_chart_svg(
        &chart_path,
        &format!(
            "char_lm: {} H={} on {}",
            config.net.cell.name(),
            config.net.hidden_size,
            if gpu.is_some() {
                "the GPU"
            } else {
                "the CPU path"
            }
        ),
        "step",
        "training loss (bits per character)",
        false,
        false,
        &[("loss".to_string(), curve)],
    )?;
    let (params, optim, carry) = match &model {
        Model::Cpu(m) => (m.params.clone(), m.state.clone(), m.carry()),
        Model::Gpu(m) => (m.params()?, m.optim_state()?, m.carry()?),
    };
    let ck_path = args.out.join("checkpoint.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert("chars".to_string(), corpus.chars.iter().collect::<String>());
    meta.insert("step".to_string(), (done + args.steps).to_string());
    Checkpoint {
        params,
        optim,
        carry,
        meta,
    }
    .save(&ck_path)?;
    println!("wrote {} and {}", chart_path.display(), ck_path.display());
    Ok(())
}
