//! The file-system side of the store: the directory lock, synced writes and
//! renames, and the checksums that let every file that claims to be complete
//! be checked on open.

use super::super::PipelineError;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The lock file of an output directory. Hidden, and left in place after the
/// run: removing it would let a third process lock a fresh file while a
/// second still waits on the old one.
pub const LOCK_FILE: &str = ".geodyn.lock";

/// An exclusive advisory lock (`flock`) on an output directory, held while a
/// process writes into it; released when dropped (or when the process dies,
/// however it dies: the kernel drops the lock with the file descriptor).
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl Drop for DirLock {
    /// Unlocks explicitly rather than by closing: a child process forked by
    /// another thread (before its `exec` closes our descriptors) shares the
    /// open file, and with it the lock, which closing our copy would leave held.
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl DirLock {
    /// Takes the lock on `dir` (created if missing), or fails at once,
    /// naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, PipelineError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(PipelineError::Locked {
                    dir: dir.to_path_buf(),
                    holder: if pid.is_empty() {
                        "pid unknown".into()
                    } else {
                        format!("pid {pid}")
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // Only the holder writes its pid, so the text is never a mix of two.
        file.set_len(0).map_err(io(&path))?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(io(&path))?;
        Ok(DirLock { file })
    }

    /// A shared lock for readers (`evaluate`): many at once, none while a
    /// writer holds the directory.
    pub fn shared(dir: &Path) -> Result<Option<DirLock>, PipelineError> {
        let path = dir.join(LOCK_FILE);
        // A directory never written by this version has no lock file; reading
        // it needs none.
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(Some(DirLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(PipelineError::Locked {
                    dir: dir.to_path_buf(),
                    holder: format!("pid {}", pid.trim()),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }
}

/// Syncs a directory, so that the renames and removals in it survive a crash
/// of the machine (a process kill needs no sync; a power cut does).
pub fn sync_dir(dir: &Path) -> Result<(), PipelineError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Renames `from` to `to` (same directory tree) and syncs `to`'s directory.
pub fn rename_synced(from: &Path, to: &Path) -> Result<(), PipelineError> {
    std::fs::rename(from, to).map_err(io(from))?;
    sync_dir(to.parent().unwrap_or(Path::new(".")))
}

/// Writes `bytes` to `path` (created or truncated) and syncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    File::create(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(io(path))
}

/// Removes a file if it is there.
pub fn remove_if_exists(path: &Path) -> Result<(), PipelineError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

/// The size and CRC-32 of one file of a complete directory, as recorded in its
/// manifest. CRC-32 is a check against damage and mix-ups (a file replaced,
/// truncated or edited), not against an adversary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSum {
    pub file: String,
    pub bytes: u64,
    pub crc32: u32,
}

/// A running CRC-32 over pieces of a file that may be computed apart and
/// joined (the header, then each chunk's rows in order).
#[derive(Clone, Debug, Default)]
pub struct Crc {
    hasher: crc32fast::Hasher,
}

impl Crc {
    pub fn of(bytes: &[u8]) -> Crc {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(bytes);
        Crc { hasher }
    }
    /// The CRC of `len` bytes whose CRC-32 is `crc`, ready to be joined.
    pub fn from_parts(crc: u32, len: u64) -> Crc {
        Crc {
            hasher: crc32fast::Hasher::new_with_initial_len(crc, len),
        }
    }
    /// Appends `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }
    /// Appends the bytes that `next` covers.
    pub fn join(&mut self, next: &Crc) {
        self.hasher.combine(&next.hasher);
    }
    pub fn len(&self) -> u64 {
        self.hasher.total_len()
    }
    pub fn value(&self) -> u32 {
        self.hasher.clone().finalize()
    }
}

/// Streams `len` bytes of `path` from `offset` through a CRC-32.
pub fn crc_of_range(path: &Path, offset: u64, len: u64) -> Result<u32, PipelineError> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = f.read(&mut buf[..want]).map_err(io(path))?;
        if got == 0 {
            return Err(PipelineError::Corrupt {
                path: path.to_path_buf(),
                message: format!("ends {left} bytes early"),
            });
        }
        hasher.update(&buf[..got]);
        left -= got as u64;
    }
    Ok(hasher.finalize())
}

/// Checks `dir/sum.file` against its recorded size and CRC-32.
pub fn verify(dir: &Path, sum: &FileSum) -> Result<(), PipelineError> {
    let path = verify_size(dir, sum)?;
    let crc = crc_of_range(&path, 0, sum.bytes)?;
    check_crc(path, crc, sum)
}

/// Checks only the size (cheap; the CRC is checked as the file is read).
pub fn verify_size(dir: &Path, sum: &FileSum) -> Result<PathBuf, PipelineError> {
    let path = dir.join(&sum.file);
    let len = std::fs::metadata(&path).map_err(io(&path))?.len();
    if len != sum.bytes {
        return Err(PipelineError::Corrupt {
            path,
            message: format!(
                "{len} bytes, but manifest.json records {}: the file was replaced, truncated or never completed",
                sum.bytes
            ),
        });
    }
    Ok(path)
}

/// The error for a file at `path` whose CRC-32 `crc` is not the recorded one.
fn check_crc(path: PathBuf, crc: u32, sum: &FileSum) -> Result<(), PipelineError> {
    if crc == sum.crc32 {
        return Ok(());
    }
    Err(PipelineError::Corrupt {
        path,
        message: format!(
            "CRC-32 {crc:08x}, but manifest.json records {:08x}: the file changed or is damaged",
            sum.crc32
        ),
    })
}

/// A reader that computes the CRC-32 of what passes through it.
pub struct CrcReader<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> CrcReader<R> {
    pub fn new(inner: R) -> CrcReader<R> {
        CrcReader {
            inner,
            hasher: crc32fast::Hasher::new(),
        }
    }
    /// Reads what is left (so the CRC covers the whole stream) and returns it.
    pub fn finish(mut self) -> std::io::Result<(u32, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let n = self.hasher.total_len();
        Ok((self.hasher.finalize(), n))
    }
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads the `.npy` file of a complete directory, checking it against its
/// size and CRC-32 in one pass.
pub fn read_npy_checked<T>(dir: &Path, sum: &FileSum) -> Result<T, PipelineError>
where
    T: ndarray_npy::ReadNpyExt,
{
    let path = verify_size(dir, sum)?;
    let f = File::open(&path).map_err(io(&path))?;
    let mut r = CrcReader::new(std::io::BufReader::with_capacity(1 << 20, f));
    let x = T::read_npy(&mut r).map_err(|e| PipelineError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let (crc, _) = r.finish().map_err(io(&path))?;
    check_crc(path, crc, sum)?;
    Ok(x)
}
