//! The IDX file format (LeCun's MNIST format): a 4-byte magic number
//! `0x00 0x00 <type> <ndims>`, then `ndims` big-endian `u32` dimensions, then
//! the data, row-major. Only the unsigned-byte type (0x08) is supported, which
//! is what every MNIST-like image set uses. Files may be gzip-compressed;
//! compression is detected from the content (the 0x1f 0x8b gzip magic), never
//! from the file extension.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
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

/// Largest data body (the product of the header's dimensions) the reader
/// accepts: 4 GiB, far above any MNIST-like set (all of EMNIST is under
/// 1 GB), so a damaged or hostile header is refused before any reading.
pub(crate) const MAX_DECLARED_BYTES: usize = 1 << 32;

/// How many bytes past the declared body are read to report trailing data:
/// enough to give an exact count for a slightly-too-long file, bounded so an
/// endless or bomb-like stream is never read on.
const TRAILING_PROBE: usize = 1 << 16;

/// The largest buffer reserved up front from a header's promise; beyond it
/// the buffer grows with the data actually read, so a tiny file declaring
/// gigabytes costs no more than its real size.
const PREALLOC_MAX: usize = 1 << 26;

/// The file's bytes, transparently decompressed: a reader over the raw file,
/// or over a (Multi)GzDecoder of it when it starts with the gzip magic.
/// Nothing is read beyond the two bytes that tell the two apart.
struct Source {
    reader: Box<dyn Read>,
    gzip: bool,
}

impl Source {
    fn open(path: &Path) -> Result<Source, DatasetError> {
        let io_err = |source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = BufReader::new(File::open(path).map_err(io_err)?);
        let mut prefix = Vec::with_capacity(2);
        file.by_ref()
            .take(2)
            .read_to_end(&mut prefix)
            .map_err(io_err)?;
        let gzip = prefix == GZIP_MAGIC;
        let raw = std::io::Cursor::new(prefix).chain(file);
        let reader: Box<dyn Read> = if gzip {
            // MultiGzDecoder: a file may legally hold several concatenated gzip members.
            Box::new(MultiGzDecoder::new(BufReader::new(raw)))
        } else {
            Box::new(raw)
        };
        Ok(Source { reader, gzip })
    }

    /// Reads up to `n` bytes (fewer only at the end of the stream).
    fn read_up_to(&mut self, path: &Path, n: usize, buf: &mut Vec<u8>) -> Result<(), DatasetError> {
        let gzip = self.gzip;
        self.reader
            .by_ref()
            .take(n as u64)
            .read_to_end(buf)
            .map(|_| ())
            .map_err(|source| {
                // Inside a gzip stream, a data error is a damaged stream;
                // anything else (a failing disk) is still plain I/O.
                let corrupt = matches!(
                    source.kind(),
                    ErrorKind::InvalidData | ErrorKind::InvalidInput | ErrorKind::UnexpectedEof
                );
                if gzip && corrupt {
                    DatasetError::Gzip {
                        path: path.to_path_buf(),
                        source,
                    }
                } else {
                    DatasetError::Io {
                        path: path.to_path_buf(),
                        source,
                    }
                }
            })
    }
}

/// Parses and checks an IDX file of the given kind; returns its dimensions and
/// its data bytes (exactly the product of the dimensions). Streams: the
/// header is checked before the body is read, the body is read to its
/// declared size and at most [`TRAILING_PROBE`] bytes past it, so a bad
/// header, an endless stream or a gzip bomb costs no more memory than the
/// declared size.
pub(crate) fn read_idx(path: &Path, kind: IdxKind) -> Result<(Vec<usize>, Vec<u8>), DatasetError> {
    let mut src = Source::open(path)?;
    let ndims = kind.ndims();
    let header_len = 4 + 4 * ndims as usize;
    let mut header = Vec::with_capacity(header_len);
    src.read_up_to(path, 4, &mut header)?;
    if header.len() < 4 {
        return Err(DatasetError::TruncatedHeader {
            path: path.to_path_buf(),
            needed: header_len,
            found: header.len(),
        });
    }
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    // The first two bytes are always zero in IDX and the fourth is the number of
    // dimensions; a mismatch there means "not this kind of IDX file" (for example
    // a labels file passed as images), so it is reported as a bad magic number.
    if header[0] != 0 || header[1] != 0 || header[3] != ndims {
        return Err(DatasetError::BadMagic {
            path: path.to_path_buf(),
            kind: kind.name(),
            expected: kind.magic(),
            found: magic,
        });
    }
    if header[2] != TYPE_U8 {
        return Err(DatasetError::WrongType {
            path: path.to_path_buf(),
            found: header[2],
        });
    }
    src.read_up_to(path, header_len - 4, &mut header)?;
    if header.len() < header_len {
        return Err(DatasetError::TruncatedHeader {
            path: path.to_path_buf(),
            needed: header_len,
            found: header.len(),
        });
    }
    let dims: Vec<usize> = header[4..header_len]
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
        .filter(|&bytes| bytes <= MAX_DECLARED_BYTES)
        .ok_or_else(|| DatasetError::TooLarge {
            path: path.to_path_buf(),
            dims: dims_text.clone(),
            max: MAX_DECLARED_BYTES,
        })?;
    let mut data = Vec::with_capacity(expected.min(PREALLOC_MAX));
    src.read_up_to(path, expected + TRAILING_PROBE, &mut data)?;
    let found = data.len();
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
                at_least: found == expected + TRAILING_PROBE,
            }
        });
    }
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
