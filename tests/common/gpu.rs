//! One shared GPU context per test binary (each pipeline compiles once), with outputs
//! poisoned with NaN. Under CI=true a missing adapter fails the test.

use std::sync::OnceLock;

use wgpu_rnn::gpu::{Context, ContextOptions};

fn make(backends: Option<wgpu::Backends>, what: &str) -> Option<Context> {
    match Context::with_options(ContextOptions {
        backends,
        poison_outputs: true,
        ..Default::default()
    }) {
        Ok(c) => {
            eprintln!("{what}: {}", c.describe());
            Some(c)
        }
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

/// Runs `check` on the GL backend for every cell at every `(I, H, B, T)` of `shapes`
/// ([`each_case`](super::each_case)), seeded `base` + the cell's index in `Cell::ALL`
/// and labelled `"GL …"`; nothing where there is no GL adapter, outside CI.
pub fn on_gl(
    shapes: &[(usize, usize, usize, usize)],
    base: u32,
    mut check: impl FnMut(&Context, &super::Case, &str),
) {
    let Some(ctx) = gl_ctx() else { return };
    super::each_case(
        shapes,
        |c, _| base + c,
        "GL ",
        |c, label| check(ctx, c, label),
    );
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
