//! Minimal streaming `.npy` (format 1.0) writing for row blocks of a float32
//! matrix preallocated on disk, so a long encode writes each committed chunk in
//! place and never holds the whole matrix in memory. The store writes every
//! header it records a size for through here, so the sizes it checks and the
//! files it writes cannot disagree.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// The header of a C-order array of `descr` and `shape` (numpy's text),
/// padded to 64 bytes as numpy does.
fn header(descr: &str, shape: &str) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
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

/// The header of a C-order `(rows, cols)` float32 array.
pub fn header_f32(rows: usize, cols: usize) -> Vec<u8> {
    header("<f4", &format!("({rows}, {cols})"))
}

/// The header of a 1-D uint8 array of `len` elements.
pub fn header_u8(len: usize) -> Vec<u8> {
    header("|u1", &format!("({len},)"))
}

/// Creates (or truncates) a zero-filled `(rows, cols)` float32 file.
pub fn preallocate(path: &Path, rows: usize, cols: usize) -> std::io::Result<()> {
    let header = header_f32(rows, cols);
    let size = (header.len() + rows * cols * 4) as u64;
    let mut f = File::create(path)?;
    f.write_all(&header)?;
    f.set_len(size)?;
    Ok(())
}

/// Writes `bytes` (little-endian float32 values) as rows `first_row..` of a
/// preallocated `(rows, cols)` file and syncs them to disk.
pub fn write_rows(
    path: &Path,
    rows: usize,
    cols: usize,
    first_row: usize,
    bytes: &[u8],
) -> std::io::Result<()> {
    let header = header_f32(rows, cols).len() as u64;
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(header + (first_row * cols * 4) as u64))?;
    f.write_all(bytes)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn streamed_file_reads_back_with_ndarray_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        preallocate(&p, 3, 2).unwrap();
        write_rows(&p, 3, 2, 2, &le(&[5.0, 6.0])).unwrap();
        write_rows(&p, 3, 2, 0, &le(&[1.0, 2.0, 3.0, 4.0])).unwrap();
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(a, ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]));
        assert_eq!(header_f32(10_000, 39_800).len() % 64, 0);
    }

    #[test]
    fn u8_header_reads_back_with_ndarray_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.npy");
        let mut bytes = header_u8(4);
        bytes.extend([3u8, 0, 9, 255]);
        std::fs::write(&p, &bytes).unwrap();
        let a: ndarray::Array1<u8> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(a.to_vec(), vec![3, 0, 9, 255]);
    }
}
