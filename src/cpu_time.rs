//! cpu_time: CPU-time clocks, for timings on a shared machine, where the wall
//! clock also counts other jobs (the benchmarks print both).

/// CPU time of the calling thread, in seconds: what the engine itself used,
/// unaffected by other jobs on a shared machine (the wall clock is not).
pub fn thread_cpu_s() -> f64 {
    cpu_clock_s(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process (every thread), in seconds.
pub fn process_cpu_s() -> f64 {
    cpu_clock_s(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The reading of a CPU-time clock, in seconds.
fn cpu_clock_s(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the thread and process
    // CPU-time clocks are supported by every Linux kernel since 2.6.12. On
    // failure `ts` stays 0.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
