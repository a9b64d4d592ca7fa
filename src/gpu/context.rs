//! The GPU context: adapter, device, queue, the pipeline cache, and error capture.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use super::kernels::{StepSlot, STEP_BYTES};
use super::variant::{GemmVariant, StepShape, StepVariant};
use crate::cell::{with_cell, CellDef, Phase, Role};
use crate::error::{Error, Result};
use crate::params::Cell;

/// How to choose the adapter. `None` fields fall back to the environment
/// (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`), then to wgpu's default.
#[derive(Debug, Clone, Default)]
pub struct ContextOptions {
    /// Backends to search (`wgpu::Backends::VULKAN`, `GL`, …).
    pub backends: Option<wgpu::Backends>,
    /// A case-insensitive substring of the adapter's name (`"llvmpipe"`, `"nvidia"`).
    pub adapter_name: Option<String>,
    /// Fill every output buffer the library allocates with NaN before it is written, so
    /// an element a kernel forgets to write shows up (for tests; costs an upload).
    pub poison_outputs: bool,
    /// The step kernels' layout ([`StepVariant`]); `None`: the one the environment
    /// variable `WGPU_RNN_STEP` names, else the adapter's
    /// ([`StepVariant::for_adapter`]).
    pub step: Option<StepVariant>,
    /// The GEMMs' layout ([`GemmVariant`]); `None`: the one `WGPU_RNN_GEMM` names, else
    /// the adapter's ([`GemmVariant::for_adapter`]).
    pub gemm: Option<GemmVariant>,
    /// The tiled GEMM's K step, one of [`crate::shaders::GEMM_K_STEPS`]; `None`: 16
    /// where the adapter has the workgroup memory that takes
    /// ([`crate::shaders::gemm_workgroup_bytes`]), else 8. For tests and tuning; the
    /// direct GEMM has no K step and ignores it.
    pub gemm_k_step: Option<u32>,
}

/// The kernels of the crate; each is compiled once per context, on first use. The step
/// kernels are the cells': their sources and bindings come from each cell's `CellDef`,
/// so this list names no cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Gemm,
    /// The GEMM without workgroup memory (`gemm_direct.wgsl`), for CPU adapters.
    GemmDirect,
    /// Phase `.1` of a cell's fused forward step (`CellDef::STEP`).
    Step(Cell, u8),
    /// Phase `.1` of a cell's fused backward step (`CellDef::STEP_BACK`).
    StepBack(Cell, u8),
    Softmax,
    ColSum,
    ColSumPart,
    Block,
    Gather,
    Dropout,
    Xent,
    EmbedBack,
    Clip,
    Optim,
    Relayout,
}

/// How a kernel sees each of its bindings, in binding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bind {
    /// A uniform buffer.
    Uniform,
    /// A uniform buffer selected by a dynamic offset (the step schedule's entry).
    UniformDyn,
    /// Read-only storage.
    Read,
    /// Read-write storage.
    ReadWrite,
}

impl Bind {
    /// How a step kernel binds a buffer of `role` (forward or backward).
    fn of(role: Role, forward: bool) -> Bind {
        use Role::*;
        match role {
            Dims => Bind::Uniform,
            Steps => Bind::UniformDyn,
            WFwd | WBack | BiasHh | Kept | Dh => Bind::Read,
            Xw | Dg | Carry | Dh0 | Gated | DgGated | GatedDelta => Bind::ReadWrite,
            // The states: written by the forward, read by the backward.
            Hs | Cs if forward => Bind::ReadWrite,
            Hs | Cs => Bind::Read,
        }
    }
}

impl Kernel {
    /// Every kernel, for validation tests and warm-up.
    pub(crate) fn all() -> Vec<Kernel> {
        let mut k = vec![
            Kernel::Gemm,
            Kernel::GemmDirect,
            Kernel::Softmax,
            Kernel::ColSum,
            Kernel::ColSumPart,
            Kernel::Block,
            Kernel::Gather,
            Kernel::Dropout,
            Kernel::Xent,
            Kernel::EmbedBack,
            Kernel::Clip,
            Kernel::Optim,
            Kernel::Relayout,
        ];
        for cell in Cell::ALL {
            let (fwd, back) = with_cell!(cell, C => (C::STEP.len(), C::STEP_BACK.len()));
            k.extend((0..fwd as u8).map(|p| Kernel::Step(cell, p)));
            k.extend((0..back as u8).map(|p| Kernel::StepBack(cell, p)));
        }
        k
    }

    /// A step kernel's phase in its cell's definition.
    fn phase(self) -> Option<&'static Phase> {
        match self {
            Kernel::Step(cell, p) => with_cell!(cell, C => C::STEP.get(p as usize)),
            Kernel::StepBack(cell, p) => with_cell!(cell, C => C::STEP_BACK.get(p as usize)),
            _ => None,
        }
    }

    pub(crate) fn source(self) -> &'static str {
        match self {
            Kernel::Gemm => crate::shaders::GEMM,
            Kernel::GemmDirect => crate::shaders::GEMM_DIRECT,
            Kernel::Softmax => crate::shaders::HEAD,
            Kernel::ColSum | Kernel::ColSumPart => crate::shaders::REDUCE,
            Kernel::Block => crate::shaders::BLOCK,
            Kernel::Gather => crate::shaders::GATHER,
            Kernel::Dropout => crate::shaders::DROPOUT,
            Kernel::Xent => crate::shaders::XENT,
            Kernel::EmbedBack => crate::shaders::EMBED_BACK,
            Kernel::Clip => crate::shaders::CLIP,
            Kernel::Optim => crate::shaders::OPTIM,
            Kernel::Relayout => crate::shaders::RELAYOUT,
            // A phase past the cell's list is never made (`Kernel::all` and the engines
            // take phases from the lists); an empty source fails to compile if it were.
            _ => self.phase().map_or("", |p| p.src),
        }
    }

    /// Whether the kernel is compiled without runtime bounds checks: the GEMMs, whose
    /// indices the host proves in bounds for every dispatch (see `Gemm::chunk`).
    pub(crate) fn trusted(self) -> bool {
        matches!(self, Kernel::Gemm | Kernel::GemmDirect)
    }

    /// Whether the kernel is a step-kernel template (built per row count).
    pub(crate) fn is_step(self) -> bool {
        matches!(self, Kernel::Step(..) | Kernel::StepBack(..))
    }

    pub(crate) fn entry(self) -> &'static str {
        match self {
            Kernel::Softmax => "softmax",
            Kernel::ColSum => "col_sum",
            Kernel::ColSumPart => "col_sum_part",
            Kernel::Block => "block",
            Kernel::Gather => "gather",
            Kernel::Dropout => "dropout",
            Kernel::Xent => "xent",
            Kernel::EmbedBack => "embed_back",
            Kernel::Clip => "clip",
            Kernel::Optim => "optim",
            Kernel::Relayout => "relayout",
            _ => "main",
        }
    }

    /// The buffers a step kernel binds, by role, in binding order (empty for the others).
    pub(crate) fn roles(self) -> &'static [Role] {
        self.phase().map_or(&[], |p| p.binds)
    }

    /// How many storage buffers the kernel binds.
    pub(crate) fn storage_bindings(self) -> u32 {
        let b = self.bindings();
        b.iter()
            .filter(|b| matches!(b, Bind::Read | Bind::ReadWrite))
            .count() as u32
    }

    pub(crate) fn bindings(self) -> Vec<Bind> {
        use Bind::*;
        match self {
            // Parameters, A, B, bias, C, then A and B again as vec4 arrays.
            Kernel::Gemm | Kernel::GemmDirect => {
                vec![Uniform, Read, Read, Read, ReadWrite, Read, Read]
            }
            Kernel::Step(..) | Kernel::StepBack(..) => {
                let forward = matches!(self, Kernel::Step(..));
                self.roles().iter().map(|&r| Bind::of(r, forward)).collect()
            }
            Kernel::Softmax => vec![Uniform, ReadWrite],
            Kernel::Clip => vec![Uniform, ReadWrite, ReadWrite],
            Kernel::Optim => vec![Uniform, ReadWrite, Read, ReadWrite, ReadWrite],
            Kernel::ColSum
            | Kernel::ColSumPart
            | Kernel::Block
            | Kernel::Dropout
            | Kernel::Relayout => {
                vec![Uniform, Read, ReadWrite]
            }
            Kernel::Gather | Kernel::EmbedBack => vec![Uniform, Read, Read, ReadWrite],
            Kernel::Xent => vec![Uniform, Read, ReadWrite, ReadWrite],
        }
    }
}

/// A compiled kernel and its bind-group layout.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// What a context has recorded and submitted since it was made ([`Context::stats`]):
/// the host's side of a call, for measuring its cost per time step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Compute passes recorded (one per library call that runs kernels).
    pub passes: u64,
    /// Dispatches recorded into them.
    pub dispatches: u64,
    /// Host time spent recording them: command encoder, pass, pipelines, bind groups,
    /// dispatches, finishing the encoder (not making buffers, not submitting).
    pub record: std::time::Duration,
    /// Host time inside `Queue::submit` (every submission; on a CPU adapter this can
    /// include running the work).
    pub submit: std::time::Duration,
}

impl std::ops::Sub for Stats {
    type Output = Stats;
    /// The difference of two readings: what happened between them.
    fn sub(self, before: Stats) -> Stats {
        Stats {
            passes: self.passes.saturating_sub(before.passes),
            dispatches: self.dispatches.saturating_sub(before.dispatches),
            record: self.record.saturating_sub(before.record),
            submit: self.submit.saturating_sub(before.submit),
        }
    }
}

#[derive(Debug)]
struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    timestamps: bool,
    poison: bool,
    /// The step kernels' layout.
    step: StepVariant,
    /// The GEMMs' layout.
    gemm: GemmVariant,
    /// The tiled GEMM's K step.
    gemm_k_step: u32,
    /// What has been recorded and submitted ([`Context::stats`]).
    stats: Mutex<Stats>,
    pipelines: Mutex<HashMap<(Kernel, StepShape), Arc<Pipeline>>>,
    /// Step schedules by content ([`Context::schedule`]).
    schedules: Mutex<HashMap<Vec<StepSlot>, Arc<wgpu::Buffer>>>,
    /// Set (once) by the device-lost callback.
    lost: Arc<Mutex<Option<String>>>,
    /// On GL, the lock every library call holds while it uses the device, and every
    /// buffer holds while it is dropped (see [`Context`], "Threads").
    gl: Option<Arc<ReentrantLock>>,
    /// Submissions not yet known to be done, oldest first (at most [`MAX_IN_FLIGHT`]),
    /// each with a serial number (the second field: the next serial).
    in_flight: Mutex<(VecDeque<(u64, wgpu::SubmissionIndex)>, u64)>,
    /// Threads that time their passes ([`Context::set_profiling`]).
    profiling: Mutex<HashSet<ThreadId>>,
    /// Per thread: staging buffers of resolved (begin, end) timestamps, one per pass.
    stamps: Mutex<HashMap<ThreadId, VecDeque<wgpu::Buffer>>>,
}

/// Submissions the library lets run ahead of the host before a call waits for the
/// oldest: bounds the device memory held by transient buffers (uniforms, staging of
/// weight updates) whatever the call pattern.
const MAX_IN_FLIGHT: usize = 16;

/// Passes one thread may time before it reads them with [`Context::take_gpu_time_ms`];
/// older ones are dropped.
const MAX_STAMPS: usize = 4096;

/// Step-schedule entries kept cached in the context, all schedules together (16384
/// entries are 4 MiB of uniforms); a longer schedule gets a uniform of its own for the
/// call (freed with it).
const CACHED_STEP_SLOTS: u32 = 1 << 14;

/// A lock that the thread holding it may take again (wgpu-rnn's calls nest: a download
/// inside `forward_host`, a buffer dropped inside a call).
#[derive(Debug, Default)]
pub(crate) struct ReentrantLock {
    owner: Mutex<(Option<ThreadId>, usize)>,
    free: Condvar,
}

/// Holds a [`ReentrantLock`] until dropped.
pub(crate) struct ReentrantGuard<'a>(&'a ReentrantLock);

impl ReentrantLock {
    pub(crate) fn lock(&self) -> ReentrantGuard<'_> {
        let me = thread::current().id();
        let mut o = lock(&self.owner);
        loop {
            match o.0 {
                None => {
                    *o = (Some(me), 1);
                    break;
                }
                Some(t) if t == me => {
                    o.1 += 1;
                    break;
                }
                Some(_) => o = self.free.wait(o).unwrap_or_else(|p| p.into_inner()),
            }
        }
        ReentrantGuard(self)
    }
}

impl Drop for ReentrantGuard<'_> {
    fn drop(&mut self) {
        let mut o = lock(&self.0.owner);
        o.1 -= 1;
        if o.1 == 0 {
            o.0 = None;
            self.0.free.notify_one();
        }
    }
}

/// Locks a mutex, ignoring poisoning (no library state is left half-written by a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A device buffer that, on GL, is released under the context's lock (wgpu's GL backend
/// panics when its context lock is held elsewhere for more than a second).
#[derive(Debug)]
pub(crate) struct Buf {
    buffer: std::mem::ManuallyDrop<wgpu::Buffer>,
    gl: Option<Arc<ReentrantLock>>,
}

impl std::ops::Deref for Buf {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let _guard = self.gl.as_ref().map(|l| l.lock());
        // SAFETY: dropped once, here; never used again.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.buffer) };
    }
}

/// The timestamp queries of one profiled compute pass.
pub(crate) struct PassStamp {
    query_set: wgpu::QuerySet,
}

impl PassStamp {
    pub(crate) fn writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }
}

/// A GPU context: adapter, device and queue, and every pipeline compiled once, lazily.
///
/// Cheap to clone (shared). Make one per program (or test binary) and pass it to layers.
///
/// # Errors
/// Every call of the crate on a context pushes its own wgpu error scopes (they are per
/// thread) and pops them before it returns: a validation or out-of-memory error raised by
/// the call comes back from that call as [`Error::Device`], never from another thread's
/// call, and a user's own error scope around a library call stays empty. Bad arguments
/// are checked before anything is recorded ([`Error::Shape`], [`Error::Invalid`],
/// [`Error::TooLarge`] naming the argument). Once the device is lost (or destroyed with
/// `Device::destroy`), every call returns [`Error::DeviceLost`]; wgpu reports a loss
/// when the device's queue next drains, so a call that starts while work submitted before
/// the loss is still running may return tensors that can never be read: their download
/// returns the error. The context installs an uncaptured-error handler that drops what
/// no scope caught (wgpu's default panics): code that uses [`Context::device`] directly
/// should push its own error scopes.
///
/// # Threads
/// `Context`, [`super::Tensor`], [`super::Layer`] and [`super::GpuHead`] are `Send +
/// Sync`; any call may come from any thread. Work is submitted in call order per queue;
/// at most 16 submissions run ahead of the host before a call waits for the oldest, and
/// uploads are submitted as they are made, so the device memory of transient buffers
/// stays bounded whatever the call pattern. On the GL backend every call (and every drop
/// of a buffer the crate owns) holds one lock per context, so calls on one context run
/// one at a time there, and a drop may wait for another thread's call to end: wgpu's GL
/// backend panics when its own context lock is held elsewhere for longer than a timeout
/// (6 s on EGL, 1 s on Windows' WGL), and that panic inside a destructor aborts the
/// process. Code that uses [`Context::device`] or [`Context::queue`] directly, or keeps
/// and drops its own clone of a [`super::Tensor::buffer`], bypasses that lock.
#[derive(Debug, Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

/// Bytes between two step slots of the dynamic-offset uniform.
pub(crate) const STEP_STRIDE: u32 = 256;

/// What the kernels need of an adapter (storage buffers per stage: the most any kernel
/// binds, see [`Kernel::storage_bindings`]).
const MIN_INVOCATIONS: u32 = 256;
const MIN_WORKGROUP_STORAGE: u32 = 8192;

impl Context {
    /// A context on the adapter chosen by the environment (blocking).
    pub fn new() -> Result<Self> {
        Self::with_options(ContextOptions::default())
    }

    /// A context with explicit options (blocking).
    pub fn with_options(opts: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::with_options_async(opts))
    }

    /// A context with explicit options, for callers with an executor.
    pub async fn with_options_async(opts: ContextOptions) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = opts.backends {
            desc.backends = b;
        }
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let name = opts
            .adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .map(|s| s.to_lowercase());
        let adapter = match &name {
            Some(name) => {
                let adapters = instance.enumerate_adapters(backends).await;
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(name.as_str()))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(
                            "none of the adapters {names:?} on backends {backends:?} matches the name {name:?}"
                        ))
                    })?
            }
            None => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::from_env()
                        .unwrap_or(wgpu::PowerPreference::HighPerformance),
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::NoAdapter(format!("backends {backends:?}: {e}")))?,
        };
        let info = adapter.get_info();
        let step = StepVariant::choose(opts.step, &info)?;
        let gemm = GemmVariant::choose(opts.gemm, &info)?;
        let al = adapter.limits();
        let storage = Kernel::all()
            .into_iter()
            .map(Kernel::storage_bindings)
            .max()
            .unwrap_or(0);
        if al.max_storage_buffers_per_shader_stage < storage
            || al.max_compute_invocations_per_workgroup < MIN_INVOCATIONS
            || al.max_compute_workgroup_storage_size < MIN_WORKGROUP_STORAGE
        {
            return Err(Error::NoAdapter(format!(
                "adapter {:?} ({:?}) is too limited for compute: {} storage buffers per stage, \
                 {} invocations per workgroup, {} bytes of workgroup memory",
                info.name,
                info.backend,
                al.max_storage_buffers_per_shader_stage,
                al.max_compute_invocations_per_workgroup,
                al.max_compute_workgroup_storage_size
            )));
        }
        let fits = |bk: u32| {
            crate::shaders::gemm_workgroup_bytes(bk)
                <= u64::from(al.max_compute_workgroup_storage_size)
        };
        let gemm_k_step = match opts.gemm_k_step {
            Some(bk) => {
                let steps = crate::shaders::GEMM_K_STEPS;
                if !steps.contains(&bk) || !fits(bk) {
                    return Err(Error::Invalid {
                        arg: "ContextOptions::gemm_k_step",
                        msg: format!(
                            "a K step of {bk} (one of {steps:?}) taking {} bytes of workgroup \
                             memory; the adapter has {}",
                            crate::shaders::gemm_workgroup_bytes(bk),
                            al.max_compute_workgroup_storage_size
                        ),
                    });
                }
                bk
            }
            None if fits(16) => 16,
            None => 8,
        };
        // The adapter's own limits (always grantable); buffer sizes capped so that every
        // element index fits in u32. The kernels themselves stay within the defaults
        // (but for the tiled GEMM's larger K step, taken where the adapter has its memory).
        let cap = 1u64 << 31;
        let mut limits = al.clone();
        limits.max_storage_buffer_binding_size = al.max_storage_buffer_binding_size.min(cap);
        limits.max_buffer_size = al.max_buffer_size.min(cap);
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let features = if timestamps {
            wgpu::Features::TIMESTAMP_QUERY
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-rnn"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device(format!("request_device on {:?}: {e}", info.name)))?;
        // Errors are captured per call by error scopes; anything outside them (a user's
        // own use of the device) must not reach wgpu's default handler, which panics.
        device.on_uncaptured_error(Arc::new(|_e: wgpu::Error| {}));
        let lost = Arc::new(Mutex::new(None::<String>));
        let sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            lock(&sink).get_or_insert_with(|| format!("{reason:?}: {msg}"));
        });
        let gl = (info.backend == wgpu::Backend::Gl).then(|| Arc::new(ReentrantLock::default()));
        Ok(Context {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                timestamps,
                poison: opts.poison_outputs,
                step,
                gemm,
                gemm_k_step,
                stats: Mutex::new(Stats::default()),
                pipelines: Mutex::new(HashMap::new()),
                schedules: Mutex::new(HashMap::new()),
                lost,
                gl,
                in_flight: Mutex::new((VecDeque::new(), 0)),
                profiling: Mutex::new(HashSet::new()),
                stamps: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Runs one library call: holds the GL lock (on GL), fails with
    /// [`Error::DeviceLost`] once the device is lost, and captures the device errors the
    /// call raises in its own error scopes, turned into [`Error::Device`] naming `what`.
    pub(crate) fn run<T>(&self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let _gl = self.inner.gl.as_ref().map(|l| l.lock());
        self.check_alive()?;
        let d = &self.inner.device;
        let scopes = [
            wgpu::ErrorFilter::Validation,
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Internal,
        ]
        .map(|f| d.push_error_scope(f));
        let r = f();
        let mut first = None;
        for s in scopes.into_iter().rev() {
            if let Some(e) = pollster::block_on(s.pop()) {
                first.get_or_insert(e);
            }
        }
        // A loss during the call outranks whatever else went wrong in it.
        self.check_alive()?;
        let v = r?;
        match first {
            Some(e) => Err(Error::Device(format!("{what}: {e}"))),
            None => Ok(v),
        }
    }

    /// [`Error::DeviceLost`] once the device is lost; polls it (without blocking) so that
    /// a destroyed device reports its loss. Called with the GL lock held.
    fn check_alive(&self) -> Result<()> {
        self.lost_flag()?;
        self.poll(None)?;
        self.lost_flag()
    }

    /// [`Error::DeviceLost`] when the device-lost callback has run.
    fn lost_flag(&self) -> Result<()> {
        match lock(&self.inner.lost).clone() {
            Some(msg) => Err(Error::DeviceLost(msg)),
            None => Ok(()),
        }
    }

    /// Polls the device: `None` checks without blocking; `Some(index)` waits for that
    /// submission (`Some(None)`: for all). A wait that times out (GL caps one wait at
    /// about 4.3 s) is repeated; a panic inside wgpu (it panics on some fatal device
    /// errors) and an error after the device-lost callback ran become
    /// [`Error::DeviceLost`].
    fn poll(&self, wait: Option<Option<wgpu::SubmissionIndex>>) -> Result<()> {
        loop {
            let ty = match &wait {
                None => wgpu::PollType::Poll,
                Some(index) => wgpu::PollType::Wait {
                    submission_index: index.clone(),
                    timeout: None,
                },
            };
            let d = &self.inner.device;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.poll(ty)));
            return match r {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(wgpu::PollError::Timeout)) if wait.is_some() => continue,
                Ok(Err(e)) => {
                    self.lost_flag()?;
                    Err(Error::Device(format!("poll: {e}")))
                }
                Err(_) => {
                    lock(&self.inner.lost)
                        .get_or_insert_with(|| "wgpu panicked while polling the device".into());
                    self.lost_flag()
                }
            };
        }
    }

    /// Whether the device is known to be lost.
    pub fn is_lost(&self) -> bool {
        let _gl = self.inner.gl.as_ref().map(|l| l.lock());
        self.check_alive().is_err()
    }

    /// Whether `other` is this same context (tensors of one context cannot be used in
    /// another's device).
    pub fn same(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Checks that a tensor belongs to this context, naming `arg` if not.
    pub(crate) fn check_owner(&self, arg: &'static str, t: &super::Tensor) -> Result<()> {
        if self.same(t.context()) {
            Ok(())
        } else {
            Err(Error::Invalid {
                arg,
                msg: format!(
                    "tensor belongs to another GPU context ({}); this one is {}",
                    t.context().describe(),
                    self.describe()
                ),
            })
        }
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter's name, backend, driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Whether the device has timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.inner.timestamps
    }

    /// Whether new output buffers are filled with NaN ([`ContextOptions::poison_outputs`]).
    pub fn poisons_outputs(&self) -> bool {
        self.inner.poison
    }

    /// The step kernels' layout this context builds ([`ContextOptions::step`]).
    pub fn step_variant(&self) -> StepVariant {
        self.inner.step
    }

    /// The GEMMs' layout this context builds ([`ContextOptions::gemm`]).
    pub fn gemm_variant(&self) -> GemmVariant {
        self.inner.gemm
    }

    /// The tiled GEMM's K step ([`ContextOptions::gemm_k_step`]).
    pub fn gemm_k_step(&self) -> u32 {
        self.inner.gemm_k_step
    }

    /// One line: `name (backend, driver driver_info; step kernels S, GEMM G)`.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        format!(
            "{} ({:?}, {} {}; step kernels {}, GEMM {})",
            i.name, i.backend, i.driver, i.driver_info, self.inner.step, self.inner.gemm
        )
    }

    /// Compiles every kernel (the step kernels in every row and unit count this
    /// context's [`StepVariant`] uses) now rather than on first use.
    pub fn warm_up(&self) -> Result<()> {
        self.run("compiling the kernels", || {
            for k in Kernel::all() {
                if k.is_step() {
                    let v = self.inner.step;
                    for rows in crate::shaders::STEP_ROWS
                        .into_iter()
                        .filter(|&r| r <= v.rows)
                    {
                        for cols in crate::shaders::STEP_COLS
                            .into_iter()
                            .filter(|&c| c <= v.cols)
                        {
                            self.pipeline(k, StepShape { rows, cols })?;
                        }
                    }
                } else {
                    self.pipeline(k, StepShape::default())?;
                }
            }
            Ok(())
        })
    }

    /// The compiled pipeline of `kernel` (for step kernels, for `shape` in this context's
    /// [`StepVariant`]), compiling it on first use.
    pub(crate) fn pipeline(&self, kernel: Kernel, shape: StepShape) -> Result<Arc<Pipeline>> {
        let mut cache = lock(&self.inner.pipelines);
        if let Some(p) = cache.get(&(kernel, shape)) {
            return Ok(p.clone());
        }
        let device = &self.inner.device;
        let (rows, split, cols) = if kernel.is_step() {
            (shape.rows, self.inner.step.split, shape.cols)
        } else {
            (0, 1, 1)
        };
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
            .bindings()
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (ty, dynamic, min) = match b {
                    Bind::Uniform => (wgpu::BufferBindingType::Uniform, false, None),
                    Bind::UniformDyn => (
                        wgpu::BufferBindingType::Uniform,
                        true,
                        wgpu::BufferSize::new(STEP_BYTES),
                    ),
                    Bind::Read => (
                        wgpu::BufferBindingType::Storage { read_only: true },
                        false,
                        None,
                    ),
                    Bind::ReadWrite => (
                        wgpu::BufferBindingType::Storage { read_only: false },
                        false,
                        None,
                    ),
                };
                wgpu::BindGroupLayoutEntry {
                    binding: i as u32,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty,
                        has_dynamic_offset: dynamic,
                        min_binding_size: min,
                    },
                    count: None,
                }
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.entry()),
            entries: &entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.entry()),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(kernel.entry()),
            source: wgpu::ShaderSource::Wgsl(
                if kernel == Kernel::Gemm {
                    crate::shaders::gemm_with_k_step(self.inner.gemm_k_step)?
                } else {
                    crate::shaders::expand_variant(kernel.source(), rows, split, cols)?
                }
                .into(),
            ),
        };
        let module = if kernel.trusted() {
            let mut checks = wgpu::ShaderRuntimeChecks::checked();
            checks.bounds_checks = false;
            // SAFETY: only the bounds checks are off, and only for the GEMM kernels, whose
            // every buffer index `Gemm::chunk` (src/gpu/kernels.rs) proves in bounds before
            // each dispatch (each operand's extent checked against its buffer, then each
            // kernel reads and writes only inside those extents; the argument is written
            // out there and in shaders/gemm.wgsl), and whose private and workgroup array
            // indices are bounded by constants. Loop bounding and the other checks stay.
            unsafe { device.create_shader_module_trusted(desc, checks) }
        } else {
            device.create_shader_module(desc)
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry()),
            layout: Some(&pl),
            module: &module,
            entry_point: Some(kernel.entry()),
            compilation_options: Default::default(),
            cache: None,
        });
        let p = Arc::new(Pipeline { pipeline, layout });
        cache.insert((kernel, shape), p.clone());
        Ok(p)
    }

    /// The uniform holding a step schedule, one entry per dispatch at `k · STEP_STRIDE`
    /// bytes. Schedules are cached by content (a layer's are the same for every call of
    /// one length), up to [`CACHED_STEP_SLOTS`] entries in all, so a repeated call
    /// uploads nothing; a longer one gets a uniform of its own, freed with the call.
    /// `arg` names the input whose length sets the schedule's, for the errors.
    pub(crate) fn schedule(
        &self,
        arg: &'static str,
        slots: &[StepSlot],
    ) -> Result<Arc<wgpu::Buffer>> {
        let mut cache = lock(&self.inner.schedules);
        if let Some(buf) = cache.get(slots) {
            return Ok(buf.clone());
        }
        let limit = self.inner.limits.max_buffer_size;
        let need = slots.len() as u64 * STEP_STRIDE as u64;
        if need > limit {
            return Err(Error::TooLarge {
                arg,
                bytes: need as u128,
                limit_name: "the device's max_buffer_size (step schedule, 256 bytes a step)",
                limit: limit as u128,
            });
        }
        let words = (STEP_STRIDE / 4) as usize;
        let mut data = crate::host::vec_of(arg, slots.len() * words, 0u32)?;
        for (k, slot) in slots.iter().enumerate() {
            let w: &[u32] = bytemuck::cast_slice(std::slice::from_ref(slot));
            data[k * words..k * words + w.len()].copy_from_slice(w);
        }
        let buf = Arc::new(self.buffer_init("step schedule", &data, wgpu::BufferUsages::UNIFORM));
        if slots.len() <= CACHED_STEP_SLOTS as usize {
            let held: usize = cache.keys().map(Vec::len).sum();
            if held + slots.len() > CACHED_STEP_SLOTS as usize {
                cache.clear();
            }
            cache.insert(slots.to_vec(), buf.clone());
        }
        Ok(buf)
    }

    /// A buffer initialised from `data` (created unmapped and written through the queue:
    /// a buffer mapped at creation panics inside wgpu once the device is lost).
    pub(crate) fn buffer_init<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        // wgpu rejects empty buffers; a zero-length array still gets 16 bytes.
        let size = (bytes.len() as u64).max(16).next_multiple_of(16);
        let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !bytes.is_empty() {
            let whole = bytes.len() / 4 * 4;
            self.inner.queue.write_buffer(&buffer, 0, &bytes[..whole]);
            if whole < bytes.len() {
                let mut tail = [0u8; 4];
                tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
                self.inner.queue.write_buffer(&buffer, whole as u64, &tail);
            }
        }
        buffer
    }

    /// As [`Context::buffer_init`], owned as a [`Buf`] (released under the GL lock).
    pub(crate) fn buf_init<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
        usage: wgpu::BufferUsages,
    ) -> Buf {
        self.wrap(self.buffer_init(label, data, usage))
    }

    /// Owns `buffer` as a [`Buf`].
    pub(crate) fn wrap(&self, buffer: wgpu::Buffer) -> Buf {
        Buf {
            buffer: std::mem::ManuallyDrop::new(buffer),
            gl: self.inner.gl.clone(),
        }
    }

    /// A uniform buffer holding `value`.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.buffer_init(
            label,
            std::slice::from_ref(value),
            wgpu::BufferUsages::UNIFORM,
        )
    }

    /// The number of f32 elements of `dims`, checked: a product that overflows, or more
    /// bytes than one storage binding of the device holds, is [`Error::TooLarge`] naming
    /// `arg`.
    pub(crate) fn check_elems(&self, arg: &'static str, dims: &[usize]) -> Result<u64> {
        let l = &self.inner.limits;
        let (limit_name, limit) = if l.max_storage_buffer_binding_size <= l.max_buffer_size {
            (
                "the device's max_storage_buffer_binding_size",
                l.max_storage_buffer_binding_size,
            )
        } else {
            ("the device's max_buffer_size", l.max_buffer_size)
        };
        let n = crate::host::elems(arg, dims, 4)? as u128;
        let bytes = crate::host::bytes_u128(dims, 4);
        if n > 0 && bytes > limit as u128 {
            return Err(Error::TooLarge {
                arg,
                bytes,
                limit_name,
                limit: limit as u128,
            });
        }
        Ok(n as u64)
    }

    /// Checks a dispatch's workgroup count along one dimension.
    pub(crate) fn check_groups(&self, arg: &'static str, groups: u64) -> Result<()> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension as u64;
        if groups > max {
            return Err(Error::Invalid {
                arg,
                msg: format!(
                    "needs {groups} workgroups along one dimension, over the device's limit of {max}"
                ),
            });
        }
        Ok(())
    }

    /// Submits `encoder` (or, with `None`, only the queue's pending writes), then, when
    /// more than [`MAX_IN_FLIGHT`] submissions are unfinished, waits for the oldest.
    pub(crate) fn submit(&self, encoder: Option<wgpu::CommandEncoder>) -> Result<()> {
        self.submit_commands(encoder.map(|e| e.finish()))
    }

    /// Adds one recorded compute pass of `dispatches` dispatches, recorded in `took`, to
    /// the context's [`Stats`].
    pub(crate) fn count_pass(&self, dispatches: u64, took: std::time::Duration) {
        let mut s = lock(&self.inner.stats);
        s.passes += 1;
        s.dispatches += dispatches;
        s.record += took;
    }

    /// What this context has recorded and submitted so far: the difference of two
    /// readings around a call gives its dispatches and its host time spent recording
    /// (per time step: divide by the steps).
    pub fn stats(&self) -> Stats {
        *lock(&self.inner.stats)
    }

    /// As [`Context::submit`], for finished commands.
    pub(crate) fn submit_commands(&self, commands: Option<wgpu::CommandBuffer>) -> Result<()> {
        let start = std::time::Instant::now();
        let idx = self.inner.queue.submit(commands);
        lock(&self.inner.stats).submit += start.elapsed();
        let oldest = {
            let mut f = lock(&self.inner.in_flight);
            let serial = f.1;
            f.1 += 1;
            f.0.push_back((serial, idx));
            if f.0.len() > MAX_IN_FLIGHT {
                f.0.pop_front()
            } else {
                None
            }
        };
        if let Some((_, old)) = oldest {
            self.poll(Some(Some(old)))?;
        }
        Ok(())
    }

    /// Turns GPU timing on or off for the calling thread: while on (and where the device
    /// has timestamp queries), every compute pass the crate records on this thread is
    /// timed on the GPU, and [`Context::take_gpu_time_ms`] on this thread returns the
    /// sum. Other threads are not affected. Returns whether timing is on.
    pub fn set_profiling(&self, on: bool) -> bool {
        let on = on && self.inner.timestamps;
        let me = thread::current().id();
        let mut set = lock(&self.inner.profiling);
        if on {
            set.insert(me);
        } else {
            set.remove(&me);
            // Timings not read by now are dropped with the thread's entry.
            lock(&self.inner.stamps).remove(&me);
        }
        on
    }

    pub(crate) fn pass_timestamps(&self) -> Option<PassStamp> {
        if !lock(&self.inner.profiling).contains(&thread::current().id()) {
            return None;
        }
        Some(PassStamp {
            query_set: self
                .inner
                .device
                .create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("pass timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
        })
    }

    pub(crate) fn end_pass(&self, enc: &mut wgpu::CommandEncoder, stamp: PassStamp) {
        let d = &self.inner.device;
        let resolve = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps staging"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.resolve_query_set(&stamp.query_set, 0..2, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &staging, 0, 16);
        let mut all = lock(&self.inner.stamps);
        let mine = all.entry(thread::current().id()).or_default();
        if mine.len() >= MAX_STAMPS {
            mine.pop_front();
        }
        mine.push_back(staging);
    }

    /// Waits for the GPU, then returns the summed GPU time in milliseconds of the passes
    /// this thread timed since its last call, or `None` when nothing was timed
    /// (profiling off, or no timestamp queries on this device).
    pub fn take_gpu_time_ms(&self) -> Result<Option<f64>> {
        self.run("reading GPU timestamps", || {
            let bufs = lock(&self.inner.stamps)
                .remove(&thread::current().id())
                .unwrap_or_default();
            if bufs.is_empty() {
                return Ok(None);
            }
            let (tx, rx) = std::sync::mpsc::channel();
            for b in &bufs {
                let tx = tx.clone();
                b.slice(..)
                    .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
            }
            drop(tx);
            self.poll_wait()?;
            for r in rx.try_iter().take(bufs.len()) {
                r.map_err(|e| Error::Device(format!("timestamps: {e}")))?;
            }
            let period = self.inner.queue.get_timestamp_period() as f64;
            let mut ns = 0.0;
            for b in &bufs {
                {
                    let view = b
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| Error::Device(format!("timestamps: {e}")))?;
                    let t: &[u64] = bytemuck::cast_slice(&view);
                    ns += t[1].saturating_sub(t[0]) as f64 * period;
                }
                b.unmap();
            }
            Ok(Some(ns / 1e6))
        })
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.run("waiting for the GPU", || self.poll_wait())
    }

    /// Blocks until all submitted work is done (inside a call).
    pub(crate) fn poll_wait(&self) -> Result<()> {
        // Everything submitted before the wait is done after it; later submissions (of
        // other threads) stay counted.
        let last = lock(&self.inner.in_flight).1;
        self.poll(Some(None))?;
        lock(&self.inner.in_flight)
            .0
            .retain(|(serial, _)| *serial >= last);
        Ok(())
    }
}
