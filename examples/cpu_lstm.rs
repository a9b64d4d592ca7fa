//! A real forward and backward pass of an LSTM on the CPU path, timed.
//!
//! `cargo run --release --example cpu_lstm` (shape T=50, B=16, I=128, H=256).

use std::time::Instant;

use ndarray::Array3;
use wgpu_rnn::{cpu, Cell, Params, SplitMix64};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> wgpu_rnn::Result<()> {
    let (t, b, i, h) = (50, 16, 128, 256);
    let p = Params::<f32>::init(Cell::Lstm, i, h, 1)?;
    let mut rng = SplitMix64(2);
    let x = Array3::from_shape_simple_fn((t, b, i), || rng.next_f64() as f32 * 2.0 - 1.0);
    let dh = Array3::from_shape_simple_fn((t, b, h), || rng.next_f64() as f32 - 0.5);
    let (mut fwd, mut both) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let s = Instant::now();
        let tr = cpu::forward(&p, x.view(), None, None)?;
        let f = s.elapsed().as_secs_f64() * 1e3;
        let g = cpu::backward(&p, &tr, dh.view(), None)?;
        let fb = s.elapsed().as_secs_f64() * 1e3;
        std::hint::black_box(&g);
        fwd.push(f);
        both.push(fb);
    }
    let tr = cpu::forward(&p, x.view(), None, None)?;
    let g = cpu::backward(&p, &tr, dh.view(), None)?;
    println!("LSTM f32 CPU T={t} B={b} I={i} H={h}");
    println!(
        "  |h_T|  = {:.6}",
        tr.h_last()
            .expect("T > 0")
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt()
    );
    println!(
        "  |dW_hh| = {:.6}",
        g.dw_hh.iter().map(|v| v * v).sum::<f32>().sqrt()
    );
    println!(
        "  median forward {:.2} ms, forward+backward {:.2} ms (40 runs)",
        median(fwd),
        median(both)
    );
    Ok(())
}
