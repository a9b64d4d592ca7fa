//! One shared GPU context per test binary (each pipeline compiles once), with outputs
//! poisoned with NaN. Under CI=true a missing adapter fails the test.

use std::sync::OnceLock;

use wgpu_rnn::gpu::{Context, ContextOptions, GemmVariant, StepVariant};

fn make(backends: Option<wgpu::Backends>, what: &str) -> Option<Context> {
    make_variant(backends, None, what)
}

fn make_variant(
    backends: Option<wgpu::Backends>,
    variant: Option<(StepVariant, GemmVariant)>,
    what: &str,
) -> Option<Context> {
    match Context::with_options(ContextOptions {
        backends,
        poison_outputs: true,
        step: variant.map(|v| v.0),
        gemm: variant.map(|v| v.1),
        ..Default::default()
    }) {
        Ok(c) => {
            eprintln!("{what}: {}", c.describe());
            Some(c)
        }
        // A bad WGPU_RNN_STEP / WGPU_RNN_GEMM (or a variant a test forces) is the test's
        // or the caller's mistake, not a missing adapter: never a silent skip.
        Err(e @ wgpu_rnn::Error::Invalid { .. }) => panic!("{what}: {e}"),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("CI=true and no GPU adapter for {what}: {e}");
            }
            eprintln!("SKIPPING GPU test, no adapter for {what}: {e}");
            None
        }
    }
}

/// The default adapter (lavapipe on CI), or None outside CI when there is none.
pub fn ctx() -> Option<&'static Context> {
    static CTX: OnceLock<Option<Context>> = OnceLock::new();
    CTX.get_or_init(|| make(None, "default adapter")).as_ref()
}

/// The GL backend (llvmpipe through EGL on CI).
pub fn gl_ctx() -> Option<&'static Context> {
    static CTX: OnceLock<Option<Context>> = OnceLock::new();
    CTX.get_or_init(|| make(Some(wgpu::Backends::GL), "GL backend"))
        .as_ref()
}

/// The kernel variants the grids run beside a context's own: the other adapter default
/// (split step kernels and the tiled GEMM on a CPU adapter, the unit step kernels and
/// the direct GEMM on a GPU) and a split of 4 whose lanes carry 4 units × up to 2 rows
/// (each lane owning two of its eight (row, unit) pairs' epilogues), beside the
/// context's own GEMM.
fn extra_variants(own: &Context) -> Vec<(StepVariant, GemmVariant)> {
    let (step, gemm) = (own.step_variant(), own.gemm_variant());
    let other = if step.split == 1 {
        (StepVariant::SPLIT, GemmVariant::Tiled)
    } else {
        (StepVariant::UNIT, GemmVariant::Direct)
    };
    // Each lane owns two (row, unit) pairs of 8: the owner loop and units per lane.
    let pairs = StepVariant {
        split: 4,
        rows: 2,
        cols: 4,
    };
    [other, (pairs, gemm)]
        .into_iter()
        .filter(|&v| v != (step, gemm))
        .collect()
}

fn with_variants(
    own: Option<&'static Context>,
    cell: &'static OnceLock<Vec<Context>>,
    backends: Option<wgpu::Backends>,
    what: &str,
) -> Vec<&'static Context> {
    let Some(own) = own else { return Vec::new() };
    let extra = cell.get_or_init(|| {
        extra_variants(own)
            .into_iter()
            .filter_map(|v| {
                let label = format!("{what}, step {}, GEMM {}", v.0, v.1);
                make_variant(backends, Some(v), &label)
            })
            .collect()
    });
    std::iter::once(own).chain(extra.iter()).collect()
}

/// The default adapter in its own kernel variants, then in each other pair the grids
/// test (see `extra_variants`); empty outside CI when there is no adapter.
pub fn variant_ctxs() -> Vec<&'static Context> {
    static CTXS: OnceLock<Vec<Context>> = OnceLock::new();
    with_variants(ctx(), &CTXS, None, "default adapter")
}

/// As [`variant_ctxs`], on the GL backend.
pub fn gl_variant_ctxs() -> Vec<&'static Context> {
    static CTXS: OnceLock<Vec<Context>> = OnceLock::new();
    with_variants(gl_ctx(), &CTXS, Some(wgpu::Backends::GL), "GL backend")
}

/// A label prefix naming `ctx`'s kernel variants: `"[split8,rows=8 tiled] "`.
pub fn variant_label(ctx: &Context) -> String {
    format!("[{} {}] ", ctx.step_variant(), ctx.gemm_variant())
}

/// Runs `check` on the GL backend, in every step variant of [`gl_variant_ctxs`], for
/// every cell at every `(I, H, B, T)` of `shapes` ([`each_case`](super::each_case)),
/// seeded `base` + the cell's index in `Cell::ALL` and labelled `"GL [variant] …"`;
/// nothing where there is no GL adapter, outside CI.
pub fn on_gl(
    shapes: &[(usize, usize, usize, usize)],
    base: u32,
    mut check: impl FnMut(&Context, &super::Case, &str),
) {
    for ctx in gl_variant_ctxs() {
        super::each_case(
            shapes,
            |c, _| base + c,
            &format!("GL {}", variant_label(ctx)),
            |c, label| check(ctx, c, label),
        );
    }
}

/// A context of its own (not shared with the binary's other tests), on the default
/// adapter: for tests that destroy the device or read its counters.
pub fn fresh() -> Option<Context> {
    make(None, "own context")
}

/// Runs `f` on another thread; a hang (or panic) past `secs` seconds fails the test.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: hung or panicked"))
}
