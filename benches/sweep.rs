//! The benchmark binary: batch × hidden (× cell, × mode, × backend) sweeps of the GPU and
//! CPU paths. `cargo bench --bench sweep -- --help` lists the flags; `--quick` finishes in
//! under two minutes on lavapipe.
//!
//! FLOPs counted (GEMM work only, elementwise ignored), with G gates (1 RNN, 4 LSTM, 3 GRU):
//!   forward          2·T·B·G·H·(I + H)
//!   forward+backward 3 × that (backward: recurrent carry, dW_hh, dW_ih, dX).
//!
//! `--layers N` / `--bidirectional` time whole networks (`wgpu_rnn::net` on the CPU,
//! `wgpu_rnn::gpu::Network` on the GPU) instead of single layers; their FLOPs are the sum
//! over layers and directions of the formula above with `I_l` (`I` for layer 0, `D·H`
//! above it) in place of `I`.

#[path = "support/chart.rs"]
mod chart;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{ArgAction, Parser};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2, Array3, Ix2, Ix3};
use wgpu_rnn::gpu::{matmul, Context, Layer, Mode, Network, Tensor};
use wgpu_rnn::net::{self, NetConfig, NetParams};
use wgpu_rnn::{cpu, Cell, Params, SplitMix64};

#[derive(Debug, Clone)]
struct Opts {
    cells: Vec<Cell>,
    batch: Vec<usize>,
    hidden: Vec<usize>,
    seq: Vec<usize>,
    input: Option<usize>,
    modes: Vec<bool>, // false: forward, true: forward+backward
    backends: Vec<String>,
    runs: usize,
    warmup: usize,
    gemm: Option<(usize, usize, usize)>,
    out: String,
    layers: usize,
    bidirectional: bool,
}

/// sweep: GPU and CPU RNN/LSTM/GRU benchmark (`cargo bench --bench sweep -- [OPTIONS]`)
// (The doc line above is `--help`'s heading.) List flags take comma-separated values; with
// `ArgAction::Set` and `args_override_self` a repeated flag replaces its earlier value.
#[derive(Parser, Debug)]
#[command(
    name = "sweep",
    bin_name = "sweep",
    args_override_self = true,
    after_help = AFTER_HELP
)]
struct Args {
    /// Cells: rnn, lstm, gru, gru_reset_before (the lecture GRU) [default: lstm,rnn]
    #[arg(long = "cell", value_name = "CELLS", value_parser = parse_cell,
          value_delimiter = ',', action = ArgAction::Set)]
    cells: Option<Vec<Cell>>,
    /// Batch sizes B [default: 1,8,32,64,256]
    #[arg(long, value_name = "B,..", value_parser = parse_num::<usize>,
          value_delimiter = ',', action = ArgAction::Set)]
    batch: Option<Vec<usize>>,
    /// Hidden sizes H [default: 32,128,256,512,1024]
    #[arg(long, value_name = "H,..", value_parser = parse_num::<usize>,
          value_delimiter = ',', action = ArgAction::Set)]
    hidden: Option<Vec<usize>>,
    /// Sequence lengths T [default: 50]
    #[arg(long, value_name = "T,..", value_parser = parse_num::<usize>,
          value_delimiter = ',', action = ArgAction::Set)]
    seq: Option<Vec<usize>>,
    /// Input size I [default: the hidden size]
    #[arg(long, value_name = "N", value_parser = parse_num::<usize>)]
    input: Option<usize>,
    /// Modes: fwd (forward only), fwdbwd (forward+backward)
    #[arg(long = "mode", value_name = "MODES", value_parser = parse_mode,
          value_delimiter = ',', action = ArgAction::Set, default_value = "fwd,fwdbwd")]
    modes: Vec<bool>,
    /// Backends: gpu, cpu
    #[arg(long = "backend", value_name = "BACKENDS", value_parser = parse_backend,
          value_delimiter = ',', action = ArgAction::Set, default_value = "gpu,cpu")]
    backends: Vec<String>,
    /// Timed runs per point (median, min), at least 1 [default: 5]
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    runs: Option<usize>,
    /// Warm-up runs per point, before the timed runs [default: 1]
    #[arg(long, value_name = "N", value_parser = parse_num::<usize>)]
    warmup: Option<usize>,
    /// Also time the GEMM alone, M×K times K×N
    #[arg(long, value_name = "M,N,K", value_parser = parse_gemm,
          default_value = "64,512,512", overrides_with = "no_gemm")]
    gemm: (usize, usize, usize),
    /// Skip the GEMM timing
    #[arg(long, overrides_with = "gemm")]
    no_gemm: bool,
    /// Stacked layers L, at least 1 (L > 1: see below)
    #[arg(long, value_name = "N", value_parser = parse_positive, default_value = "1")]
    layers: usize,
    /// Two directions per layer, D = 2 (see below)
    #[arg(long)]
    bidirectional: bool,
    /// Where the CSV and SVG go
    #[arg(long, value_name = "DIR", default_value = "target/sweep")]
    out: String,
    /// Preset: lstm, B 1,16,64, H 64,256, I 128, T 50, 3 runs, 1 warm-up run (flags given
    /// beside it override its values)
    #[arg(long)]
    quick: bool,
    /// Passed by `cargo bench` to harness = false benches; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const AFTER_HELP: &str = "\
Every combination of the listed cells, modes, sequence lengths, batch sizes, hidden sizes
and backends is one point, timed and (on the GPU) checked against the CPU path. List flags
take comma-separated values; a flag given twice keeps its last value.

With L > 1 or D = 2 each point times a whole network (wgpu_rnn::net on the CPU, gpu::Network
on the GPU; FLOPs summed over layers and directions, I_l = D·H above layer 0; host µs per
time step of the whole network; the CPU network's fwd is net::cpu::forward, which keeps
its trace, where the GPU's runs Mode::Inference); L = 1, D = 1 times single layers
(gpu::Layer, cpu::forward_inference for fwd, cpu::forward/backward for fwdbwd).

FLOPs counted (GEMM work only), with G gates (1 rnn, 4 lstm, 3 gru): forward 2·T·B·G·H·(I + H),
forward+backward 3× that.";

/// A number, surrounding spaces ignored.
fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("cannot parse {s:?}"))
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match parse_num(s)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn parse_cell(s: &str) -> Result<Cell, String> {
    let c = s.trim();
    Cell::ALL
        .into_iter()
        .find(|k| k.name() == c)
        .ok_or_else(|| {
            let names: Vec<&str> = Cell::ALL.iter().map(|k| k.name()).collect();
            format!("unknown cell {c:?} (one of {})", names.join(", "))
        })
}

/// A mode: false for forward only, true for forward+backward.
fn parse_mode(s: &str) -> Result<bool, String> {
    match s.trim() {
        "fwd" => Ok(false),
        "fwdbwd" => Ok(true),
        m => Err(format!("unknown mode {m:?} (fwd or fwdbwd)")),
    }
}

fn parse_backend(s: &str) -> Result<String, String> {
    match s.trim() {
        b @ ("gpu" | "cpu") => Ok(b.to_string()),
        b => Err(format!("unknown backend {b:?} (gpu or cpu)")),
    }
}

fn parse_gemm(s: &str) -> Result<(usize, usize, usize), String> {
    let v = s
        .split(',')
        .map(parse_num)
        .collect::<Result<Vec<usize>, _>>()?;
    match v[..] {
        [m, n, k] => Ok((m, n, k)),
        _ => Err("takes M,N,K".into()),
    }
}

fn parse() -> Opts {
    let a = Args::parse();
    let q = a.quick;
    Opts {
        cells: a.cells.unwrap_or_else(|| {
            if q {
                vec![Cell::Lstm]
            } else {
                vec![Cell::Lstm, Cell::Rnn]
            }
        }),
        batch: a.batch.unwrap_or_else(|| {
            if q {
                vec![1, 16, 64]
            } else {
                vec![1, 8, 32, 64, 256]
            }
        }),
        hidden: a.hidden.unwrap_or_else(|| {
            if q {
                vec![64, 256]
            } else {
                vec![32, 128, 256, 512, 1024]
            }
        }),
        seq: a.seq.unwrap_or_else(|| vec![50]),
        input: a.input.or(if q { Some(128) } else { None }),
        modes: a.modes,
        backends: a.backends,
        runs: a.runs.unwrap_or(if q { 3 } else { 5 }),
        warmup: a.warmup.unwrap_or(1),
        gemm: (!a.no_gemm).then_some(a.gemm),
        out: a.out,
        layers: a.layers,
        bidirectional: a.bidirectional,
    }
}

/// One point of the grid.
#[derive(Debug, Clone, Copy)]
struct Point {
    cell: Cell,
    bwd: bool,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    /// Layers L and directions D (1 and 1: a single layer).
    layers: usize,
    dirs: usize,
}

impl Point {
    /// Whether this point times a whole network (L > 1 or D = 2).
    fn is_net(&self) -> bool {
        self.layers > 1 || self.dirs > 1
    }

    fn config(&self) -> NetConfig {
        // From `new` (biases, PyTorch's defaults for everything else), so fields the
        // crate adds later keep their defaults here.
        let mut c = NetConfig::new(self.cell, self.i, self.h);
        c.num_layers = self.layers;
        c.bidirectional = self.dirs == 2;
        c
    }
}

struct Row {
    cell: Cell,
    mode: &'static str,
    backend: &'static str,
    l: usize,
    d: usize,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    median_ms: f64,
    min_ms: f64,
    gflops: f64,
    host_us_per_step: f64,
    /// GPU: host µs spent recording per time step (`Context::stats`: encoder, pass,
    /// dispatches; not buffers, not submitting), forward and backward together.
    record_us_per_step: f64,
    /// GPU: dispatches per time step of the point (fixed ones such as the projection
    /// GEMM spread over the steps).
    dispatches_per_step: f64,
    timing: &'static str,
    err: Option<f64>,
    /// Median wall-clock ms of a run, submit to completion (what peers report), beside
    /// `median_ms` when that is the summed GPU timestamps.
    wall_ms: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rel_err<D: ndarray::Dimension>(
    got: &ndarray::Array<f32, D>,
    want: &ndarray::Array<f32, D>,
) -> f64 {
    let mut num = 0f64;
    let mut den = 0f64;
    for (g, w) in got.iter().zip(want) {
        if !g.is_finite() {
            return f64::INFINITY;
        }
        num = num.max((g - w).abs() as f64);
        den = den.max(w.abs() as f64);
    }
    if den > 0.0 {
        num / den
    } else {
        num
    }
}

struct Problem {
    p: Params<f32>,
    x: Array3<f32>,
    dh: Array3<f32>,
}

fn problem(cell: Cell, t: usize, b: usize, i: usize, h: usize) -> Problem {
    let mut rng = SplitMix64(7 + (t * 31 + b * 7 + i * 3 + h) as u64);
    let mut u = |n: usize, m: usize, k: usize| {
        Array3::from_shape_simple_fn((n, m, k), || rng.next_f64() as f32 * 2.0 - 1.0)
    };
    let x = u(t, b, i);
    let dh = u(t, b, h);
    Problem {
        p: Params::init(cell, i, h, 3).expect("benchmark sizes fit in memory"),
        x,
        dh,
    }
}

/// Times one GPU point: the host recording cost per recorded step (median of 3 runs on an
/// idle GPU: the forward and backward calls alone), then warm-up and timed runs of
/// `fwd` (and `bwd` of its result, for a forward+backward point), GPU timestamps where the
/// adapter has them, and `check`'s error of the first run's results against the CPU.
fn time_gpu<F, G>(
    ctx: &Context,
    o: &Opts,
    pt: Point,
    fwd: impl Fn() -> wgpu_rnn::Result<F>,
    bwd: impl Fn(&F) -> wgpu_rnn::Result<G>,
    check: impl Fn(&F, Option<&G>) -> wgpu_rnn::Result<f64>,
) -> wgpu_rnn::Result<Row> {
    let (t, backward) = (pt.t, pt.bwd);
    let mut hosts = Vec::new();
    let (mut records, mut dispatches) = (Vec::new(), 0.0);
    for _ in 0..3 {
        ctx.wait()?;
        let before = ctx.stats();
        let s = Instant::now();
        let out = fwd()?;
        let mut host = s.elapsed().as_secs_f64();
        if backward {
            ctx.wait()?;
            let s = Instant::now();
            bwd(&out)?;
            host += s.elapsed().as_secs_f64();
        }
        let used = ctx.stats() - before;
        hosts.push(host * 1e6 / (t as f64 * if backward { 2.0 } else { 1.0 }));
        records.push(used.record.as_secs_f64() * 1e6 / t as f64);
        dispatches = used.dispatches as f64 / t as f64;
    }
    let host_us = median(&mut hosts);
    ctx.wait()?;

    let profiling = ctx.set_profiling(true);
    let mut walls = Vec::new();
    let mut gpus = Vec::new();
    let mut err = None;
    for run in 0..o.warmup + o.runs {
        ctx.wait()?;
        let _ = ctx.take_gpu_time_ms()?;
        let start = Instant::now();
        let out = fwd()?;
        let grads = if backward { Some(bwd(&out)?) } else { None };
        ctx.wait()?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let gpu = ctx.take_gpu_time_ms()?;
        if run == 0 {
            err = Some(check(&out, grads.as_ref())?);
        }
        if run >= o.warmup {
            walls.push(wall);
            if let Some(g) = gpu {
                gpus.push(g);
            }
        }
    }
    ctx.set_profiling(false);
    let wall = median(&mut walls.clone());
    let (times, timing) = if profiling && gpus.len() == walls.len() {
        (gpus, "gpu-timestamps")
    } else {
        (walls, "wall")
    };
    let mut r = row(pt, "gpu", times, host_us, timing, err);
    r.wall_ms = wall;
    r.record_us_per_step = median(&mut records);
    r.dispatches_per_step = dispatches;
    Ok(r)
}

/// Times one single-layer GPU point; returns the row.
fn gpu_point(ctx: &Context, o: &Opts, pt: Point) -> wgpu_rnn::Result<Row> {
    let Point {
        cell,
        bwd,
        t,
        b,
        i,
        h,
        ..
    } = pt;
    let pr = problem(cell, t, b, i, h);
    let layer = Layer::new(ctx, &pr.p)?;
    let x = Tensor::from_array(ctx, "x", &pr.x)?;
    let dh = Tensor::from_array(ctx, "dh", &pr.dh)?;
    let mode = if bwd { Mode::Training } else { Mode::Inference };
    time_gpu(
        ctx,
        o,
        pt,
        || layer.forward(&x, None, None, mode),
        |out| layer.backward(out.trace.as_ref().expect("training"), &dh, None),
        |out, grads| {
            // Correctness guard: the GPU result against the CPU path, once per point.
            let tr = cpu::forward(&pr.p, pr.x.view(), None, None)?;
            let got = out.h.to_array()?.into_dimensionality::<Ix3>().expect("3-d");
            let mut e = rel_err(&got, &tr.h);
            if let Some(g) = grads {
                let want = cpu::backward(&pr.p, &tr, pr.dh.view(), None)?;
                let got = g.to_cpu()?;
                e = e
                    .max(rel_err(&got.dx, &want.dx))
                    .max(rel_err(&got.dw_ih, &want.dw_ih))
                    .max(rel_err(&got.dw_hh, &want.dw_hh))
                    .max(rel_err(&got.db_ih, &want.db_ih));
            }
            Ok(e)
        },
    )
}

fn row(
    pt: Point,
    backend: &'static str,
    mut times: Vec<f64>,
    host: f64,
    timing: &'static str,
    err: Option<f64>,
) -> Row {
    let Point {
        cell,
        bwd,
        t,
        b,
        i,
        h,
        ..
    } = pt;
    let med = median(&mut times);
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    // Wall-clock times are their own wall column; a GPU point sets it from its walls.
    let wall_ms = if timing == "wall" { med } else { f64::NAN };
    // Summed over layers and directions: layer 0 reads I, the layers above it D·H.
    let flops = (0..pt.layers)
        .map(|l| {
            let il = if l == 0 { i } else { pt.dirs * h };
            pt.dirs as f64 * 2.0 * (t * b * cell.gates() * h * (il + h)) as f64
        })
        .sum::<f64>()
        * if bwd { 3.0 } else { 1.0 };
    Row {
        cell,
        mode: if bwd { "fwdbwd" } else { "fwd" },
        backend,
        l: pt.layers,
        d: pt.dirs,
        t,
        b,
        i,
        h,
        median_ms: med,
        min_ms: min,
        gflops: flops / (med * 1e6),
        host_us_per_step: host,
        record_us_per_step: f64::NAN,
        dispatches_per_step: f64::NAN,
        timing,
        err,
        wall_ms,
    }
}

fn cpu_point(o: &Opts, pt: Point) -> wgpu_rnn::Result<Row> {
    let Point {
        cell,
        bwd,
        t,
        b,
        i,
        h,
        ..
    } = pt;
    let pr = problem(cell, t, b, i, h);
    let mut times = Vec::new();
    for run in 0..o.warmup + o.runs {
        let start = Instant::now();
        if bwd {
            let tr = cpu::forward(&pr.p, pr.x.view(), None, None)?;
            std::hint::black_box(cpu::backward(&pr.p, &tr, pr.dh.view(), None)?);
        } else {
            // Forward alone is inference, as on the GPU (`Mode::Inference`) and in
            // PyTorch's `no_grad`: nothing kept for backward.
            std::hint::black_box(cpu::forward_inference(&pr.p, pr.x.view(), None, None)?);
        }
        if run >= o.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(row(pt, "cpu", times, f64::NAN, "wall", None))
}

/// A network point's weights, input and output gradient.
struct NetProblem {
    p: NetParams<f32>,
    x: Array3<f32>,
    d_output: Array3<f32>,
}

fn net_problem(pt: Point) -> wgpu_rnn::Result<NetProblem> {
    let Point { t, b, i, h, .. } = pt;
    let mut rng = SplitMix64(7 + (t * 31 + b * 7 + i * 3 + h) as u64);
    let mut u = |n: usize, m: usize, k: usize| {
        Array3::from_shape_simple_fn((n, m, k), || rng.next_f64() as f32 * 2.0 - 1.0)
    };
    let x = u(t, b, i);
    let d_output = u(t, b, pt.dirs * h);
    Ok(NetProblem {
        p: NetParams::init(pt.config(), 3)?,
        x,
        d_output,
    })
}

/// Times one GPU network point (`gpu::Network`), as [`gpu_point`] times a layer; the
/// correctness guard compares the output, `dx` and the parameter gradients with the CPU
/// network's.
fn gpu_net_point(ctx: &Context, o: &Opts, pt: Point) -> wgpu_rnn::Result<Row> {
    let pr = net_problem(pt)?;
    let network = Network::new(ctx, &pr.p)?;
    let x = Tensor::from_array(ctx, "x", &pr.x)?;
    let d_output = Tensor::from_array(ctx, "d_output", &pr.d_output)?;
    let mode = if pt.bwd {
        Mode::Training
    } else {
        Mode::Inference
    };
    // Host cost per time step of the whole network (every layer and direction).
    time_gpu(
        ctx,
        o,
        pt,
        || network.forward(&x, None, None, None, mode),
        |out| network.backward(out.trace.as_ref().expect("training"), &d_output, None, None),
        |out, grads| {
            // Correctness guard: the GPU network against the CPU network, once per point.
            let tr = net::cpu::forward(&pr.p, pr.x.view(), None, None, None)?;
            let got = out
                .output
                .to_array()?
                .into_dimensionality::<Ix3>()
                .expect("3-d");
            let mut e = rel_err(&got, &tr.output);
            if let Some(g) = grads {
                let want = net::cpu::backward(&pr.p, &tr, pr.d_output.view(), None, None)?;
                let got = g.dx.to_array()?.into_dimensionality::<Ix3>().expect("3-d");
                e = e.max(rel_err(&got, &want.dx));
                for ((_, got), (_, want)) in g.named()?.into_iter().zip(want.named()) {
                    e = e.max(rel_err(&Array1::from(got), &Array1::from(want)));
                }
            }
            Ok(e)
        },
    )
}

/// Times one CPU network point (`net::cpu::forward`, `net::cpu::backward`), wall time.
fn cpu_net_point(o: &Opts, pt: Point) -> wgpu_rnn::Result<Row> {
    let pr = net_problem(pt)?;
    let mut times = Vec::new();
    for run in 0..o.warmup + o.runs {
        let start = Instant::now();
        let tr = net::cpu::forward(&pr.p, pr.x.view(), None, None, None)?;
        if pt.bwd {
            std::hint::black_box(net::cpu::backward(
                &pr.p,
                &tr,
                pr.d_output.view(),
                None,
                None,
            )?);
        }
        std::hint::black_box(&tr);
        if run >= o.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(row(pt, "cpu", times, f64::NAN, "wall", None))
}

/// Times `matmul` alone at `M×K · K×N`: (median ms, GFLOP/s, max rel err, timing).
fn gemm_point(
    ctx: &Context,
    o: &Opts,
    (m, n, k): (usize, usize, usize),
) -> wgpu_rnn::Result<(f64, f64, f64, &'static str)> {
    let mut rng = SplitMix64(1);
    let a = Array2::from_shape_simple_fn((m, k), || rng.next_f64() as f32 - 0.5);
    let b = Array2::from_shape_simple_fn((k, n), || rng.next_f64() as f32 - 0.5);
    let ta = Tensor::from_array(ctx, "a", &a)?;
    let tb = Tensor::from_array(ctx, "b", &b)?;
    let profiling = ctx.set_profiling(true);
    let (mut walls, mut gpus) = (Vec::new(), Vec::new());
    let mut err = 0.0;
    for run in 0..o.warmup + o.runs.max(5) {
        ctx.wait()?;
        let _ = ctx.take_gpu_time_ms()?;
        let s = Instant::now();
        let c = matmul(&ta, &tb)?;
        ctx.wait()?;
        let wall = s.elapsed().as_secs_f64() * 1e3;
        if let Some(g) = ctx.take_gpu_time_ms()? {
            gpus.push(g);
        }
        if run == 0 {
            let got = c.to_array()?.into_dimensionality::<Ix2>().expect("2-d");
            err = rel_err(&got, &a.dot(&b));
        }
        if run >= o.warmup {
            walls.push(wall);
        }
    }
    ctx.set_profiling(false);
    let n_runs = walls.len();
    let (mut t, timing) = if profiling && gpus.len() >= n_runs {
        (gpus[gpus.len() - n_runs..].to_vec(), "gpu-timestamps")
    } else {
        (walls, "wall")
    };
    let med = median(&mut t);
    Ok((med, 2.0 * (m * n * k) as f64 / (med * 1e6), err, timing))
}

/// The charts of `{out}/sweep.svg`: one panel per cell and mode, GFLOP/s against the
/// hidden size (logarithmic), one line per backend and batch size (the CPU's dashed).
fn charts(rows: &[Row]) -> Vec<chart::LineChart> {
    let mut groups: Vec<(Cell, &str)> = Vec::new();
    for r in rows {
        if !groups.contains(&(r.cell, r.mode)) {
            groups.push((r.cell, r.mode));
        }
    }
    groups
        .into_iter()
        .map(|(cell, mode)| {
            let pts: Vec<&Row> = rows
                .iter()
                .filter(|r| r.cell == cell && r.mode == mode)
                .collect();
            let mut keys: Vec<(&str, usize)> = Vec::new();
            for r in &pts {
                if !keys.contains(&(r.backend, r.b)) {
                    keys.push((r.backend, r.b));
                }
            }
            let series = keys
                .into_iter()
                .map(|(backend, b)| {
                    let mut line: Vec<&Row> = pts
                        .iter()
                        .copied()
                        .filter(|r| r.backend == backend && r.b == b)
                        .collect();
                    line.sort_by_key(|r| r.h);
                    chart::Series {
                        name: format!("{backend} B={b}"),
                        points: line.iter().map(|r| (r.h as f64, r.gflops)).collect(),
                        dashed: backend == "cpu",
                    }
                })
                .collect();
            chart::LineChart {
                title: format!("{} {mode} — GFLOP/s against hidden size", cell.name()),
                x_label: "hidden size H".into(),
                y_label: "GFLOP/s".into(),
                log_x: true,
                log_y: false,
                series,
            }
        })
        .collect()
}

fn main() {
    let o = parse();
    let need_gpu = o.backends.iter().any(|b| b == "gpu");
    let ctx = if need_gpu {
        match Context::new() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1)
            }
        }
    } else {
        None
    };
    println!("wgpu-rnn sweep  {}", chrono_free_date());
    if let Some(c) = &ctx {
        let i = c.adapter_info();
        println!(
            "adapter: {} | backend {:?} | driver {} {} | step kernels {} | timestamps: {}",
            i.name,
            i.backend,
            i.driver,
            i.driver_info,
            c.step_variant(),
            if c.has_timestamps() {
                "yes"
            } else {
                "no (wall time after a blocking poll)"
            }
        );
    }
    println!(
        "cpu: {} threads (the crate's f32 CPU path: its packed SIMD GEMM, {} kernel)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        wgpu_rnn::cpu::gemm::isa_name()
    );
    println!("flops: forward 2·T·B·G·H·(I+H), forward+backward 3× that (G = 1 rnn, 4 lstm, 3 gru)");
    let dirs = if o.bidirectional { 2 } else { 1 };
    let is_net = o.layers > 1 || o.bidirectional;
    if is_net {
        println!(
            "network: L = {} layer{}, D = {dirs} direction{}; flops summed over layers and directions, I_l = I for layer 0, D·H above",
            o.layers,
            if o.layers == 1 { "" } else { "s" },
            if dirs == 1 { "" } else { "s" }
        );
    }
    if let (Some(c), Some(g)) = (&ctx, o.gemm) {
        c.warm_up().unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1)
        });
        match gemm_point(c, &o, g) {
            Ok((ms, gf, err, timing)) => println!(
                "gemm {}x{}x{}: median {ms:.3} ms, {gf:.2} GFLOP/s ({timing}), max rel err vs ndarray {err:.1e}",
                g.0, g.1, g.2
            ),
            Err(e) => println!("gemm failed: {e}"),
        }
    }
    let mut points = Vec::new();
    for &cell in &o.cells {
        for &bwd in &o.modes {
            for &t in &o.seq {
                for &b in &o.batch {
                    for &h in &o.hidden {
                        for backend in &o.backends {
                            points.push((cell, bwd, t, b, h, backend.clone()));
                        }
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    let total = points.len();
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}")
            .expect("a valid template")
            .progress_chars("#>."),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    for (k, (cell, bwd, t, b, h, backend)) in points.into_iter().enumerate() {
        let i = o.input.unwrap_or(h);
        let pt = Point {
            cell,
            bwd,
            t,
            b,
            i,
            h,
            layers: o.layers,
            dirs,
        };
        let net_tag = if is_net {
            format!(" L={} D={dirs}", o.layers)
        } else {
            String::new()
        };
        let what = format!(
            "{} {} {backend}{net_tag} T={t} B={b} I={i} H={h}",
            cell.name(),
            if bwd { "fwdbwd" } else { "fwd" }
        );
        if bar.is_hidden() {
            // No terminal on stderr: a plain line per point instead of the bar.
            eprintln!("[{}/{total}] {what}", k + 1);
        }
        bar.set_message(what);
        let r = match (backend.as_str(), &ctx, pt.is_net()) {
            ("gpu", Some(c), false) => gpu_point(c, &o, pt),
            ("gpu", Some(c), true) => gpu_net_point(c, &o, pt),
            (_, _, false) => cpu_point(&o, pt),
            (_, _, true) => cpu_net_point(&o, pt),
        };
        match r {
            Ok(r) => rows.push(r),
            Err(e) => bar
                .suspend(|| eprintln!("{}{net_tag} T={t} B={b} H={h} {backend}: {e}", cell.name())),
        }
        bar.inc(1);
    }
    bar.finish_with_message("done");
    if !bar.is_hidden() {
        // The finished bar stays; the table starts on the next line.
        eprintln!();
    }

    println!(
        "{:<5} {:<7} {:<4} {:>2} {:>2} {:>4} {:>5} {:>5} {:>5} {:>10} {:>10} {:>9} {:>9} {:>9} {:<15} {:>9} {:>7} {:>6}",
        "cell",
        "mode",
        "dev",
        "L",
        "D",
        "T",
        "B",
        "I",
        "H",
        "median ms",
        "min ms",
        "GFLOP/s",
        "host µs",
        "max err",
        "timing",
        "wall ms",
        "rec µs",
        "disp"
    );
    for r in &rows {
        println!(
            "{:<5} {:<7} {:<4} {:>2} {:>2} {:>4} {:>5} {:>5} {:>5} {:>10.3} {:>10.3} {:>9.2} {:>9} {:>9} {:<15} {:>9.3} {:>7} {:>6}",
            r.cell.name(),
            r.mode,
            r.backend,
            r.l,
            r.d,
            r.t,
            r.b,
            r.i,
            r.h,
            r.median_ms,
            r.min_ms,
            r.gflops,
            if r.host_us_per_step.is_nan() { "-".to_string() } else { format!("{:.1}", r.host_us_per_step) },
            r.err.map_or("-".to_string(), |e| format!("{e:.1e}")),
            r.timing,
            r.wall_ms,
            if r.record_us_per_step.is_nan() { "-".to_string() } else { format!("{:.2}", r.record_us_per_step) },
            if r.dispatches_per_step.is_nan() { "-".to_string() } else { format!("{:.2}", r.dispatches_per_step) }
        );
    }
    // Backward over forward, per backend, where both modes ran: (fwdbwd - fwd) / fwd.
    for r in rows.iter().filter(|r| r.mode == "fwd") {
        if let Some(fb) = rows.iter().find(|c| {
            c.mode == "fwdbwd"
                && c.backend == r.backend
                && c.cell == r.cell
                && (c.l, c.d, c.t, c.b, c.i, c.h) == (r.l, r.d, r.t, r.b, r.i, r.h)
        }) {
            println!(
                "  {} {} T={} B={} I={} H={}: backward/forward time {:.2}",
                r.cell.name(),
                r.backend,
                r.t,
                r.b,
                r.i,
                r.h,
                (fb.median_ms - r.median_ms) / r.median_ms
            );
        }
    }
    // GPU over CPU speed-up where both ran.
    for r in rows.iter().filter(|r| r.backend == "gpu") {
        if let Some(c) = rows.iter().find(|c| {
            c.backend == "cpu"
                && c.cell == r.cell
                && c.mode == r.mode
                && (c.l, c.d) == (r.l, r.d)
                && c.t == r.t
                && c.b == r.b
                && c.h == r.h
        }) {
            println!(
                "  {} {} T={} B={} H={}: gpu/cpu time ratio {:.2}",
                r.cell.name(),
                r.mode,
                r.t,
                r.b,
                r.h,
                r.median_ms / c.median_ms
            );
        }
    }
    if let Err(e) = std::fs::create_dir_all(&o.out) {
        eprintln!("cannot create {}: {e}", o.out);
        return;
    }
    let mut csv = String::from(
        "cell,mode,backend,L,D,T,B,I,H,median_ms,min_ms,gflops,host_us_per_step,max_rel_err,timing,wall_ms,record_us_per_step,dispatches_per_step\n",
    );
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.3},{:.2},{},{},{:.4},{:.3},{:.3}",
            r.cell.name(),
            r.mode,
            r.backend,
            r.l,
            r.d,
            r.t,
            r.b,
            r.i,
            r.h,
            r.median_ms,
            r.min_ms,
            r.gflops,
            r.host_us_per_step,
            r.err.map_or(String::new(), |e| format!("{e:.2e}")),
            r.timing,
            r.wall_ms,
            r.record_us_per_step,
            r.dispatches_per_step
        );
    }
    let csv_path = format!("{}/sweep.csv", o.out);
    let svg_path = format!("{}/sweep.svg", o.out);
    let mut wrote = Vec::new();
    match std::fs::write(&csv_path, csv) {
        Ok(()) => wrote.push(csv_path),
        Err(e) => eprintln!("cannot write {csv_path}: {e}"),
    }
    match chart::write_svg(Path::new(&svg_path), &charts(&rows)) {
        Ok(()) => wrote.push(svg_path),
        Err(e) => eprintln!("cannot write {svg_path}: {e}"),
    }
    if !wrote.is_empty() {
        println!("wrote {}", wrote.join(" and "));
    }
}

/// Today's date (UTC) without a date crate.
fn chrono_free_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{:02}-{:02}", y + (m <= 2) as i64, m, d)
}
