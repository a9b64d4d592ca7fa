//! Worker threads kept between calls: a call split into parts runs part 0 on the
//! calling thread and the others on these workers, which wait for the next call
//! spinning a short while, then parked. Spawning threads per call costs tens of
//! microseconds on an idle machine, and far more on a busy one, where a new thread
//! waits for a core; a worker still spinning from the previous call starts at once.
//!
//! One call at a time uses the workers; a call that finds them busy (another thread's
//! call, or a call from inside a part) spawns scoped threads as before, and so does a
//! call in a child process forked after the workers started (it has none of them).
//!
//! The workers run with the default floating-point environment: a caller's flush-to-zero
//! or denormals-are-zero flags (MXCSR FTZ/DAZ) are not carried over to them, so parts on
//! workers compute subnormals in full whatever the caller set (as scoped threads do).
//!
//! A task whose parts wait for one another (the backward's barrier) needs every part to
//! start: the workers start them all, but on the scoped fallback a thread the system
//! refuses to create makes `std::thread::scope`'s spawn panic, and the parts already
//! running then wait at the barrier for ones that never come.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins for the next call before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// A part's work, given the part's index.
type Task = dyn Fn(usize) + Sync;

/// The current call: its number, its task (valid until every worker it was given to
/// has finished, which its caller waits for), its number of parts and its caller (whom
/// the last worker to finish wakes).
#[derive(Clone)]
struct Job {
    epoch: usize,
    task: *const Task,
    parts: usize,
    caller: std::thread::Thread,
}

// SAFETY: the task is `Sync` and outlives every use (the caller waits for the workers
// before its task goes out of scope); the pointer itself is plain data.
unsafe impl Send for Job {}

struct Pool {
    /// Held by the one call whose parts the workers run.
    busy: AtomicBool,
    /// The number of the latest call; workers watch it.
    epoch: AtomicUsize,
    job: Mutex<Option<Job>>,
    /// Workers still running a part of the current call.
    pending: AtomicUsize,
    /// Whether a worker's part panicked.
    panicked: AtomicBool,
    threads: Vec<std::thread::Thread>,
    /// The process that started the workers (a forked child has none of them).
    pid: u32,
}

/// The workers (one per thread beyond the first), started on first use; `None` with
/// one thread, or when the system refuses to start any. When it refuses some, the pool
/// keeps those that did start (calls with more parts spawn scoped threads).
fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let n = super::gemm::threads().saturating_sub(1);
        if n == 0 {
            return None;
        }
        // The workers need the pool, and the pool their handles: they wait for them.
        let handles: OnceLock<&'static Pool> = OnceLock::new();
        let handles: &'static OnceLock<&'static Pool> = Box::leak(Box::new(handles));
        let mut threads = Vec::with_capacity(n);
        for w in 1..=n {
            let spawned = std::thread::Builder::new()
                .name(format!("wgpu-rnn-cpu-{w}"))
                .spawn(move || {
                    let pool = loop {
                        match handles.get() {
                            Some(p) => break *p,
                            None => std::thread::park(),
                        }
                    };
                    work(pool, w)
                });
            match spawned {
                Ok(h) => threads.push(h.thread().clone()),
                // The ones started so far still get the pool below and serve it.
                Err(_) => break,
            }
        }
        if threads.is_empty() {
            return None;
        }
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            busy: AtomicBool::new(false),
            epoch: AtomicUsize::new(0),
            job: Mutex::new(None),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            threads,
            pid: std::process::id(),
        }));
        let _ = handles.set(pool);
        for t in &pool.threads {
            t.unpark();
        }
        Some(pool)
    })
}

/// A worker's loop: part `w` of every call with more than `w` parts.
fn work(pool: &Pool, w: usize) -> ! {
    let mut seen = 0;
    // When this worker last finished a part (or started): it spins for SPIN after it,
    // however many calls it had no part in pass meanwhile.
    let mut start = Instant::now();
    loop {
        let epoch = loop {
            let e = pool.epoch.load(Ordering::Acquire);
            if e != seen {
                break e;
            }
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::park();
            }
        };
        seen = epoch;
        let job = pool.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // A later call than the one seen: this worker had no part in that one.
        let Some(job) = job.filter(|j| j.epoch == epoch && w < j.parts) else {
            continue;
        };
        // SAFETY: this worker counts in `pending`, and the caller keeps the task alive
        // until `pending` is zero.
        let task = unsafe { &*job.task };
        let run = std::panic::AssertUnwindSafe(|| super::gemm::serial(|| task(w)));
        if std::panic::catch_unwind(run).is_err() {
            // Read by the caller after `pending` is zero (the decrement below orders it).
            pool.panicked.store(true, Ordering::Relaxed);
        }
        if pool.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last part: wake the caller if it parked (a wake-up it no longer needs
            // is harmless: it re-checks `pending`, and so does any later `park`).
            job.caller.unpark();
        }
        start = Instant::now();
    }
}

/// Releases the workers when the call ends, however it ends: waits for every part
/// given to a worker (the task lives in the caller's frame), then takes this call's
/// panic flag before another call can take the workers.
struct Release<'a> {
    pool: &'a Pool,
    /// Whether it has released them (`finish` ran).
    done: bool,
    /// Whether a worker's part of this call panicked (once `done`).
    panicked: bool,
}

impl Release<'_> {
    /// Waits for the workers' parts, releases the workers, and says whether one of
    /// those parts panicked. Idempotent.
    fn finish(&mut self) -> bool {
        if self.done {
            return self.panicked;
        }
        let pool = self.pool;
        let start = Instant::now();
        while pool.pending.load(Ordering::Acquire) != 0 {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                // The worker that brings `pending` to zero unparks this thread; parking
                // may also return early, hence the loop.
                std::thread::park();
            }
        }
        *pool.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // This call's flag, taken while it still holds the workers: the next call
        // cannot clear it or see it.
        self.panicked = pool.panicked.swap(false, Ordering::Relaxed);
        self.done = true;
        pool.busy.store(false, Ordering::Release);
        self.panicked
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs `task(k)` for every `k < parts`: `0` on this thread (with its products on it,
/// see [`super::gemm::serial`]), the others on the workers, or on scoped threads when
/// the workers are busy or too few.
///
/// # Panics
/// If a part panics (after every part has ended).
pub(crate) fn run(parts: usize, task: &(dyn Fn(usize) + Sync)) {
    let serial = |k: usize| super::gemm::serial(|| task(k));
    if parts <= 1 {
        if parts == 1 {
            serial(0);
        }
        return;
    }
    let free = pool().filter(|p| {
        p.pid == std::process::id()
            && p.threads.len() + 1 >= parts
            && p.busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    });
    let Some(pool) = free else {
        std::thread::scope(|s| {
            for k in 1..parts {
                s.spawn(move || serial(k));
            }
            serial(0);
        });
        return;
    };
    // SAFETY: the lifetime is erased only for the workers, and `Release` waits for
    // every one of them to be done with the task before this frame (and the task)
    // can end.
    let task_ptr: *const Task =
        unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(task) };
    let epoch = pool.epoch.load(Ordering::Relaxed).wrapping_add(1);
    *pool.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job {
        epoch,
        task: task_ptr,
        parts,
        caller: std::thread::current(),
    });
    pool.pending.store(parts - 1, Ordering::Relaxed);
    let mut release = Release {
        pool,
        done: false,
        panicked: false,
    };
    pool.epoch.store(epoch, Ordering::Release);
    for t in &pool.threads[..parts - 1] {
        t.unpark();
    }
    serial(0);
    if release.finish() {
        panic!("a part of a CPU call panicked on a worker thread");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every part runs once per call, over many calls, from several threads at once
    /// (those that find the workers busy spawn their own).
    #[test]
    fn every_part_runs_once() {
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for parts in (0..200).map(|i| i % 4) {
                        let hits: Vec<AtomicUsize> =
                            (0..parts).map(|_| AtomicUsize::new(0)).collect();
                        super::run(parts, &|k| {
                            hits[k].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    /// A part's panic reaches the caller, and the workers serve the next call.
    #[test]
    fn a_panic_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            super::run(2, &|k| {
                if k == 1 {
                    panic!("part 1");
                }
            })
        });
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        super::run(2, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
