//! memory: checking that a large allocation sized by user input fits before
//! making it. Rust aborts the process on a failed allocation (exit 134, no
//! message naming the cause); the sizes here come from the config (network
//! size, run length, recording), so they are estimated and checked first, and
//! the allocation itself goes through `try_reserve`, so an estimate that
//! misses is still an error and not an abort.
//!
//! "Available" is the smaller of what the system can give (`MemAvailable` in
//! `/proc/meminfo` on Linux, else a fixed cap) and what this process may
//! still map under `RLIMIT_AS` (the limit minus its current virtual size).

use thiserror::Error;

/// Used where the system cannot say how much memory is free (not Linux, or
/// no readable `/proc/meminfo`).
const FALLBACK_AVAILABLE_BYTES: u64 = 16 << 30;

/// A request that does not fit in memory: what it was for, how many bytes it
/// needs, how many are available and where that figure comes from.
#[derive(Clone, Debug, Error, PartialEq)]
#[error(
    "{what}: needs about {} but only {} is available ({source_of_limit})",
    human(*needed),
    human(*available)
)]
pub struct MemoryError {
    pub what: String,
    pub needed: u64,
    pub available: u64,
    pub source_of_limit: &'static str,
}

/// Bytes as a short human figure (binary units).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The process's current virtual size (first field of `/proc/self/statm`).
fn virtual_size() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions; it returns -1 on error.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages.saturating_mul(page as u64))
}

/// The soft `RLIMIT_AS` in bytes, if one is set.
// rlim_t is u64 on Linux but not on every platform, hence the cast.
#[allow(clippy::unnecessary_cast)]
fn address_space_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid, writable rlimit for the call to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) };
    (rc == 0 && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur as u64)
}

/// Bytes this process can still allocate, and what sets that figure.
pub fn available() -> (u64, &'static str) {
    let (mut bytes, mut source) = match mem_available() {
        Some(b) => (b, "MemAvailable in /proc/meminfo"),
        None => (FALLBACK_AVAILABLE_BYTES, "fixed cap; free memory unknown"),
    };
    if let Some(limit) = address_space_limit() {
        // Without a readable size, count the whole limit as usable: the
        // try_reserve behind every check still catches what this misses.
        let left = limit.saturating_sub(virtual_size().unwrap_or(0));
        if left < bytes {
            bytes = left;
            source = "RLIMIT_AS (ulimit -v) less this process's size";
        }
    }
    (bytes, source)
}

/// `Err` unless `needed` bytes (for `what`, named in the message) fit in
/// what is available now.
pub fn check(what: impl FnOnce() -> String, needed: u64) -> Result<(), MemoryError> {
    let (available, source_of_limit) = available();
    if needed <= available {
        Ok(())
    } else {
        Err(MemoryError {
            what: what(),
            needed,
            available,
            source_of_limit,
        })
    }
}

/// `n` elements of `T` in bytes, saturating (a product that overflows is
/// certainly too big).
pub fn bytes_of<T>(n: u64) -> u64 {
    n.saturating_mul(std::mem::size_of::<T>() as u64)
}

/// Reserves room for `additional` more elements in `v`; an allocation the
/// system refuses is a [`MemoryError`] for `what`, not an abort.
pub fn try_reserve<T>(
    v: &mut Vec<T>,
    additional: usize,
    what: impl FnOnce() -> String,
) -> Result<(), MemoryError> {
    v.try_reserve_exact(additional).map_err(|_| {
        let (available, source_of_limit) = available();
        MemoryError {
            what: what(),
            needed: bytes_of::<T>(additional as u64),
            available,
            source_of_limit,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_beyond_memory_is_an_error_that_names_it() {
        let e = check(|| "test table".into(), u64::MAX).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("test table: needs about 16384.0 PiB"),
            "{msg}"
        );
        assert!(msg.contains("available"), "{msg}");
        assert!(check(|| "small".into(), 1024).is_ok());
    }

    #[test]
    fn try_reserve_refuses_instead_of_aborting() {
        let mut v: Vec<u64> = Vec::new();
        let e = try_reserve(&mut v, usize::MAX / 16, || "huge vec".into()).unwrap_err();
        assert!(e.to_string().starts_with("huge vec: needs about"), "{e}");
        try_reserve(&mut v, 10, || "small".into()).unwrap();
        assert!(v.capacity() >= 10);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
