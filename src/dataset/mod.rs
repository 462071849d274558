//! dataset: the first stage of the pipeline
//! (`dataset -> stimulus -> network -> sim -> record -> embed -> eval -> report`).
//!
//! It loads labelled grayscale images from the standard IDX format (LeCun's
//! MNIST files; gzip-compressed or raw, detected from the content) into an
//! [`ImageSet`], checking every header field and the byte count so that a
//! damaged or mismatched file is a [`DatasetError`] naming the file, never a
//! panic or a silently wrong dataset. It also ships the built-in dataset
//! (`data/mnist-10k`: 10,000 real MNIST training digits, grouped by class; see
//! `NOTICE.md` for attribution), writes IDX files (for tests and for users who
//! want to export subsets), and draws seeded, class-balanced subsets.
//!
//! Pixels stay raw bytes (0..=255) here; the stimulus stage turns them into
//! intensities and input activation trains.

mod idx;

use std::fmt;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use idx::{read_idx, write_idx, IdxKind};

/// Everything that can go wrong reading or writing a dataset. Every message
/// starts with the file path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened, read, created or written (including a
    /// missing file). The cause is the error's `source()`, not part of its
    /// message, so a chain printer (`{:#}`) shows it once.
    #[error("{}: I/O error", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file starts with the gzip magic but the stream does not decompress.
    #[error("{}: corrupt gzip stream", path.display())]
    Gzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file ends before its IDX header does.
    #[error("{}: truncated IDX header: need {needed} bytes, found {found}", path.display())]
    TruncatedHeader {
        path: PathBuf,
        needed: usize,
        found: usize,
    },
    /// The magic number is not the one of the expected kind of IDX file.
    #[error(
        "{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} (IDX {kind} file)",
        path.display()
    )]
    BadMagic {
        path: PathBuf,
        kind: &'static str,
        expected: u32,
        found: u32,
    },
    /// The IDX data type is not unsigned byte (0x08).
    #[error(
        "{}: unsupported IDX data type 0x{found:02x}, expected 0x08 (unsigned byte)",
        path.display()
    )]
    WrongType { path: PathBuf, found: u8 },
    /// The product of the header dimensions overflows or exceeds the
    /// reader's cap (checked before any data is read).
    #[error(
        "{}: IDX dimensions {dims} are too large (at most {max} data bytes are read)",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        dims: String,
        max: usize,
    },
    /// Fewer data bytes than the header's dimensions promise.
    #[error(
        "{}: truncated IDX file: header says {dims} = {expected} bytes of {what}, found {found}",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        dims: String,
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// More data bytes than the header's dimensions promise. The reader stops
    /// a little past the declared size, so `found` is a lower bound when
    /// `at_least` is set.
    #[error(
        "{}: trailing bytes in IDX file: header says {dims} = {expected} bytes of {what}, found {}{found}",
        path.display(),
        if *at_least { "at least " } else { "" }
    )]
    TrailingBytes {
        path: PathBuf,
        dims: String,
        what: &'static str,
        expected: usize,
        found: usize,
        at_least: bool,
    },
    /// An image file whose images have zero rows or zero columns.
    #[error("{}: images have zero size ({rows} x {cols})", path.display())]
    EmptyImages {
        path: PathBuf,
        rows: usize,
        cols: usize,
    },
    /// The images file and the labels file disagree on the number of items.
    #[error(
        "{}: {n_images} images, but {}: {n_labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        n_images: usize,
        labels_path: PathBuf,
        n_labels: usize,
    },
    /// A set with no images where some are needed.
    #[error("{}: holds no images", path.display())]
    NoImages { path: PathBuf },
    /// A reference set's labels skip classes: the class count is the largest
    /// label + 1, and every class below it must appear.
    #[error(
        "{}: labels go up to {} but class{} {missing} never appear{}: a reference set needs every class from 0 to {}",
        path.display(),
        n_classes - 1,
        if missing.contains([',', ' ']) { "es" } else { "" },
        if missing.contains([',', ' ']) { "" } else { "s" },
        n_classes - 1
    )]
    MissingClasses {
        path: PathBuf,
        n_classes: usize,
        missing: String,
    },
    /// A query set holds a label that is no class of the reference set.
    #[error(
        "{}: label {label} is not a class of the reference set {} (classes 0 to {})",
        path.display(),
        reference.display(),
        n_classes.saturating_sub(1)
    )]
    UnknownClass {
        path: PathBuf,
        label: u8,
        reference: PathBuf,
        n_classes: usize,
    },
    /// The data handed to a writer cannot form a valid IDX file.
    #[error("{}: cannot write IDX file: {reason}", path.display())]
    InvalidWrite { path: PathBuf, reason: String },
}

/// A set of labelled grayscale images, all `rows x cols`, pixels as raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub rows: usize,
    pub cols: usize,
    /// `len() * rows * cols` bytes, image after image, each row-major.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Where the images came from (kept for reports and error messages).
    pub images_path: PathBuf,
    pub labels_path: PathBuf,
}

// Why manual: a derived Debug would print millions of pixel bytes.
impl fmt::Debug for ImageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSet")
            .field("len", &self.len())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("class_counts", &self.class_counts())
            .field("images_path", &self.images_path)
            .field("labels_path", &self.labels_path)
            .finish()
    }
}

impl ImageSet {
    /// Loads and checks an IDX images file (magic 2051, n x rows x cols) and an
    /// IDX labels file (magic 2049, n), each gzip or raw.
    pub fn load(images: &Path, labels: &Path) -> Result<ImageSet, DatasetError> {
        let (n_images, rows, cols, pixels) = read_idx_images(images)?;
        let label_vec = read_idx_labels(labels)?;
        if label_vec.len() != n_images {
            return Err(DatasetError::CountMismatch {
                images_path: images.to_path_buf(),
                n_images,
                labels_path: labels.to_path_buf(),
                n_labels: label_vec.len(),
            });
        }
        Ok(ImageSet {
            rows,
            cols,
            pixels,
            labels: label_vec,
            images_path: images.to_path_buf(),
            labels_path: labels.to_path_buf(),
        })
    }

    /// Loads the built-in dataset (`data/mnist-10k`, see [`builtin_paths`]).
    pub fn builtin() -> Result<ImageSet, DatasetError> {
        let (images, labels) = builtin_paths();
        ImageSet::load(&images, &labels)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`, row-major. Panics if `i >= len()`, like slice
    /// indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let p = self.pixels_per_image();
        &self.pixels[i * p..(i + 1) * p]
    }

    /// `rows * cols`: also the number of input nodes an image drives.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// Largest label + 1 (0 for an empty set).
    pub fn n_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }

    /// A new set holding the given images, in the given order (duplicates
    /// allowed). Keeps the source paths. Panics on an index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let p = self.pixels_per_image();
        let mut pixels = Vec::with_capacity(indices.len() * p);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet {
            rows: self.rows,
            cols: self.cols,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            images_path: self.images_path.clone(),
            labels_path: self.labels_path.clone(),
        }
    }

    /// Refuses a set that cannot serve as the reference of a classification:
    /// no images, or labels that skip a class below the largest (for
    /// example labels 0..=9 and one 12, which would make a 13-class report
    /// with two empty classes). A held-out query set may lack classes, so
    /// this is checked on the reference only; see [`ImageSet::check_queries`].
    pub fn check_reference(&self) -> Result<(), DatasetError> {
        if self.is_empty() {
            return Err(DatasetError::NoImages {
                path: self.images_path.clone(),
            });
        }
        let counts = self.class_counts();
        let missing: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] == 0).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(DatasetError::MissingClasses {
            path: self.labels_path.clone(),
            n_classes: counts.len(),
            missing: class_runs(&missing),
        })
    }

    /// Refuses a query set with no images or with a label that is no class
    /// of `reference` (classes `0..reference.n_classes()`).
    pub fn check_queries(&self, reference: &ImageSet) -> Result<(), DatasetError> {
        if self.is_empty() {
            return Err(DatasetError::NoImages {
                path: self.images_path.clone(),
            });
        }
        let n_classes = reference.n_classes();
        match self.labels.iter().find(|&&l| l as usize >= n_classes) {
            Some(&label) => Err(DatasetError::UnknownClass {
                path: self.labels_path.clone(),
                label,
                reference: reference.labels_path.clone(),
                n_classes,
            }),
            None => Ok(()),
        }
    }

    /// Number of images of each class `0..n_classes()`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Sorted class numbers as runs, `"3, 10 to 254"`: a label 255 among
/// digits must not print 245 numbers.
fn class_runs(classes: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &c in classes {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == c => *end = c,
            _ => runs.push((c, c)),
        }
    }
    runs.iter()
        .map(|&(a, b)| match b - a {
            0 => a.to_string(),
            1 => format!("{a}, {b}"),
            _ => format!("{a} to {b}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Paths of the built-in dataset's images and labels files, under the crate's
/// source directory (`CARGO_MANIFEST_DIR/data/mnist-10k/`).
pub fn builtin_paths() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("mnist-10k");
    (
        dir.join("images-idx3-ubyte.gz"),
        dir.join("labels-idx1-ubyte.gz"),
    )
}

/// Writes an IDX images file (magic 2051) of `pixels.len() / (rows * cols)`
/// images; `gzip` compresses it.
pub fn write_idx_images(
    path: &Path,
    rows: usize,
    cols: usize,
    pixels: &[u8],
    gzip: bool,
) -> Result<(), DatasetError> {
    let per_image =
        rows.checked_mul(cols)
            .filter(|&p| p > 0)
            .ok_or_else(|| DatasetError::InvalidWrite {
                path: path.to_path_buf(),
                reason: format!("image size {rows} x {cols} is empty or too large"),
            })?;
    if !pixels.len().is_multiple_of(per_image) {
        return Err(DatasetError::InvalidWrite {
            path: path.to_path_buf(),
            reason: format!(
                "{} pixel bytes is not a whole number of {rows} x {cols} images",
                pixels.len()
            ),
        });
    }
    write_idx(path, &[pixels.len() / per_image, rows, cols], pixels, gzip)
}

/// Writes an IDX labels file (magic 2049); `gzip` compresses it.
pub fn write_idx_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<(), DatasetError> {
    write_idx(path, &[labels.len()], labels, gzip)
}

/// Reads and checks an IDX images file: returns `(n, rows, cols, pixels)`.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DatasetError> {
    let (dims, pixels) = read_idx(path, IdxKind::Images)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    // Why: zero-size images would make every per-image index meaningless.
    if rows == 0 || cols == 0 {
        return Err(DatasetError::EmptyImages {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    Ok((n, rows, cols, pixels))
}

/// Reads and checks an IDX labels file.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DatasetError> {
    read_idx(path, IdxKind::Labels).map(|(_, labels)| labels)
}

/// Indices of about `n` items drawn so that every class present in `labels`
/// gets an equal share (within one), except a class with too few items, which
/// gives all it has and leaves the rest to the others. Seeded
/// (`ChaCha8Rng::seed_from_u64(seed)`), deterministic, sorted ascending.
/// Returns all indices if `n >= labels.len()`.
pub fn stratified_subset_indices(labels: &[u8], n: usize, seed: u64) -> Vec<usize> {
    if n >= labels.len() {
        return (0..labels.len()).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut classes: Vec<usize> = (0..256).filter(|&c| !by_class[c].is_empty()).collect();
    for &c in &classes {
        by_class[c].shuffle(&mut rng);
    }
    // Why shuffle the class order: the classes served first in the last,
    // incomplete round get one extra item; no class should be favoured always.
    classes.shuffle(&mut rng);
    let mut taken = vec![0usize; 256];
    let mut chosen = Vec::with_capacity(n);
    // Round-robin over the classes; terminates because n < labels.len().
    while chosen.len() < n {
        for &c in &classes {
            if chosen.len() == n {
                break;
            }
            if taken[c] < by_class[c].len() {
                chosen.push(by_class[c][taken[c]]);
                taken[c] += 1;
            }
        }
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests;
