//! The IDX file format (LeCun's MNIST format): a 4-byte magic number
//! `0x00 0x00 <type> <ndims>`, then `ndims` big-endian `u32` dimensions, then
//! the data, row-major. Only the unsigned-byte type (0x08) is supported, which
//! is what every MNIST-like image set uses. Files may be gzip-compressed;
//! compression is detected from the content (the 0x1f 0x8b gzip magic), never
//! from the file extension.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::DatasetError;

/// IDX type byte for unsigned 8-bit data.
pub(crate) const TYPE_U8: u8 = 0x08;
/// Magic number of an image file: unsigned bytes, 3 dimensions (n, rows, cols).
pub(crate) const MAGIC_IMAGES: u32 = 0x0000_0803;
/// Magic number of a label file: unsigned bytes, 1 dimension (n).
pub(crate) const MAGIC_LABELS: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What kind of IDX file a caller expects; fixes the magic number and the
/// number of dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdxKind {
    Images,
    Labels,
}

impl IdxKind {
    fn ndims(self) -> u8 {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }

    fn magic(self) -> u32 {
        match self {
            IdxKind::Images => MAGIC_IMAGES,
            IdxKind::Labels => MAGIC_LABELS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        }
    }

    fn what(self) -> &'static str {
        match self {
            IdxKind::Images => "pixels",
            IdxKind::Labels => "labels",
        }
    }
}

/// Reads the whole file, transparently decompressing gzip.
fn read_decompressed(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let mut raw = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut raw))
        .map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if raw.len() >= 2 && raw[..2] == GZIP_MAGIC {
        // MultiGzDecoder: a file may legally hold several concatenated gzip members.
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DatasetError::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses and checks an IDX file of the given kind; returns its dimensions and
/// its data bytes (exactly the product of the dimensions).
pub(crate) fn read_idx(path: &Path, kind: IdxKind) -> Result<(Vec<usize>, Vec<u8>), DatasetError> {
    let bytes = read_decompressed(path)?;
    let ndims = kind.ndims();
    let header_len = 4 + 4 * ndims as usize;
    if bytes.len() < 4 {
        return Err(DatasetError::TruncatedHeader {
            path: path.to_path_buf(),
            needed: header_len,
            found: bytes.len(),
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    // The first two bytes are always zero in IDX and the fourth is the number of
    // dimensions; a mismatch there means "not this kind of IDX file" (for example
    // a labels file passed as images), so it is reported as a bad magic number.
    if bytes[0] != 0 || bytes[1] != 0 || bytes[3] != ndims {
        return Err(DatasetError::BadMagic {
            path: path.to_path_buf(),
            kind: kind.name(),
            expected: kind.magic(),
            found: magic,
        });
    }
    if bytes[2] != TYPE_U8 {
        return Err(DatasetError::WrongType {
            path: path.to_path_buf(),
            found: bytes[2],
        });
    }
    if bytes.len() < header_len {
        return Err(DatasetError::TruncatedHeader {
            path: path.to_path_buf(),
            needed: header_len,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let dims_text = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" x ");
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DatasetError::TooLarge {
            path: path.to_path_buf(),
            dims: dims_text.clone(),
        })?;
    let found = bytes.len() - header_len;
    if found != expected {
        let (path, what) = (path.to_path_buf(), kind.what());
        return Err(if found < expected {
            DatasetError::Truncated {
                path,
                dims: dims_text,
                what,
                expected,
                found,
            }
        } else {
            DatasetError::TrailingBytes {
                path,
                dims: dims_text,
                what,
                expected,
                found,
            }
        });
    }
    let mut data = bytes;
    data.drain(..header_len);
    Ok((dims, data))
}

/// Writes an IDX file of unsigned bytes with the given dimensions.
pub(crate) fn write_idx(
    path: &Path,
    dims: &[usize],
    data: &[u8],
    gzip: bool,
) -> Result<(), DatasetError> {
    let mut header = Vec::with_capacity(4 + 4 * dims.len());
    header.extend_from_slice(&[0, 0, TYPE_U8, dims.len() as u8]);
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| DatasetError::InvalidWrite {
            path: path.to_path_buf(),
            reason: format!("dimension {d} does not fit the IDX u32 header field"),
        })?;
        header.extend_from_slice(&d.to_be_bytes());
    }
    let io_err = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = BufWriter::new(File::create(path).map_err(io_err)?);
    if gzip {
        let mut enc = GzEncoder::new(file, Compression::default());
        enc.write_all(&header).map_err(io_err)?;
        enc.write_all(data).map_err(io_err)?;
        enc.finish().map_err(io_err)?.flush().map_err(io_err)?;
    } else {
        let mut file = file;
        file.write_all(&header).map_err(io_err)?;
        file.write_all(data).map_err(io_err)?;
        file.flush().map_err(io_err)?;
    }
    Ok(())
}
