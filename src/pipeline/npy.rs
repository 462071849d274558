//! Minimal streaming `.npy` (format 1.0) writing for row blocks of a float32
//! matrix preallocated on disk, so a long encode writes each committed chunk in
//! place and never holds the whole matrix in memory.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// The header of a C-order `(rows, cols)` float32 array, padded to 64 bytes.
pub fn header_f32(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = Vec::new();
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let len = (total - 10) as u16;
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Creates (or reopens, when `keep` and the size matches) a preallocated file.
pub fn preallocate(path: &Path, rows: usize, cols: usize, keep: bool) -> std::io::Result<()> {
    let header = header_f32(rows, cols);
    let size = (header.len() + rows * cols * 4) as u64;
    if keep {
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.len() == size {
                return Ok(());
            }
        }
    }
    let mut f = File::create(path)?;
    f.write_all(&header)?;
    f.set_len(size)?;
    Ok(())
}

/// Writes rows `first_row..first_row + data.len()/cols` and syncs them to disk.
pub fn write_rows(
    path: &Path,
    rows: usize,
    cols: usize,
    first_row: usize,
    data: &[f32],
) -> std::io::Result<()> {
    let header = header_f32(rows, cols).len() as u64;
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(header + (first_row * cols * 4) as u64))?;
    let mut bytes = Vec::with_capacity(data.len() * 4);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    f.write_all(&bytes)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_file_reads_back_with_ndarray_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        preallocate(&p, 3, 2, false).unwrap();
        write_rows(&p, 3, 2, 2, &[5.0, 6.0]).unwrap();
        write_rows(&p, 3, 2, 0, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(a, ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]));
        assert_eq!(header_f32(10_000, 39_800).len() % 64, 0);
    }
}
