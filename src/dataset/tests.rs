use super::*;
use std::fs;

/// A small synthetic set: 7 images of 3 x 2 pixels, labels 0..=2.
fn sample() -> (usize, usize, Vec<u8>, Vec<u8>) {
    let (rows, cols) = (3, 2);
    let pixels: Vec<u8> = (0..7 * rows * cols).map(|i| (i * 37 % 256) as u8).collect();
    let labels = vec![0, 1, 2, 0, 1, 2, 0];
    (rows, cols, pixels, labels)
}

fn write_sample(dir: &Path, gzip: bool) -> (PathBuf, PathBuf) {
    let (rows, cols, pixels, labels) = sample();
    let ext = if gzip { ".gz" } else { "" };
    let img = dir.join(format!("img-idx3-ubyte{ext}"));
    let lab = dir.join(format!("lab-idx1-ubyte{ext}"));
    write_idx_images(&img, rows, cols, &pixels, gzip).unwrap();
    write_idx_labels(&lab, &labels, gzip).unwrap();
    (img, lab)
}

/// Writes raw bytes to `name` in `dir` and returns the path.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A well-formed raw IDX images header for n x rows x cols.
fn image_header(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut h = vec![0, 0, 0x08, 3];
    for d in [n, rows, cols] {
        h.extend_from_slice(&d.to_be_bytes());
    }
    h
}

/// Asserts that the error message names the file and contains `what`.
fn assert_err_mentions(err: DatasetError, name: &str, what: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(name),
        "message {msg:?} lacks file name {name:?}"
    );
    assert!(msg.contains(what), "message {msg:?} lacks {what:?}");
}

#[test]
fn round_trip_raw_and_gzip() {
    let (rows, cols, pixels, labels) = sample();
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (img, lab) = write_sample(dir.path(), gzip);
        let raw = fs::read(&img).unwrap();
        assert_eq!(raw[..2] == [0x1f, 0x8b], gzip, "gzip flag honoured");
        let set = ImageSet::load(&img, &lab).unwrap();
        assert_eq!((set.rows, set.cols, set.len()), (rows, cols, 7));
        assert_eq!(set.pixels, pixels);
        assert_eq!(set.labels, labels);
        assert_eq!(set.image(1), &pixels[6..12]);
        assert_eq!(set.pixels_per_image(), 6);
        assert_eq!(set.n_classes(), 3);
        assert_eq!(set.class_counts(), vec![3, 2, 2]);
        assert_eq!(set.images_path, img);
        let (n, r, c, px) = read_idx_images(&img).unwrap();
        assert_eq!((n, r, c, px), (7, rows, cols, pixels.clone()));
        assert_eq!(read_idx_labels(&lab).unwrap(), labels);
    }
}

#[test]
fn gzip_detected_by_content_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, pixels, _) = sample();
    // A gzip file without .gz, and a raw file named .gz.
    let a = dir.path().join("images.raw");
    let b = dir.path().join("images.gz");
    write_idx_images(&a, 3, 2, &pixels, true).unwrap();
    write_idx_images(&b, 3, 2, &pixels, false).unwrap();
    assert_eq!(read_idx_images(&a).unwrap().3, pixels);
    assert_eq!(read_idx_images(&b).unwrap().3, pixels);
}

#[test]
fn subset_keeps_order_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let (img, lab) = write_sample(dir.path(), false);
    let set = ImageSet::load(&img, &lab).unwrap();
    let sub = set.subset(&[5, 0, 5]);
    assert_eq!(sub.len(), 3);
    assert_eq!(sub.labels, vec![2, 0, 2]);
    assert_eq!(sub.image(0), set.image(5));
    assert_eq!(sub.image(1), set.image(0));
    assert_eq!(sub.image(2), set.image(5));
    assert!(set.subset(&[]).is_empty());
    assert_eq!(set.subset(&[]).n_classes(), 0);
}

#[test]
fn builtin_is_mnist_10k() {
    let set = ImageSet::builtin().unwrap();
    assert_eq!(set.len(), 10_000);
    assert_eq!((set.rows, set.cols), (28, 28));
    assert_eq!(set.pixels.len(), 10_000 * 784);
    assert_eq!(set.n_classes(), 10);
    assert_eq!(
        set.class_counts(),
        vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    let (img, lab) = builtin_paths();
    assert_eq!((set.images_path, set.labels_path), (img, lab));
}

#[test]
fn bad_magic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = image_header(1, 1, 1);
    bytes.push(0);
    bytes[0] = 0x12;
    let p = put(dir.path(), "badmagic.idx", &bytes);
    assert_err_mentions(
        read_idx_images(&p).unwrap_err(),
        "badmagic.idx",
        "bad magic",
    );
    // A labels file handed over as images is also a bad magic number.
    let l = dir.path().join("labels-as-images.idx");
    write_idx_labels(&l, &[1, 2, 3], false).unwrap();
    let err = read_idx_images(&l).unwrap_err();
    assert!(matches!(err, DatasetError::BadMagic { found: 0x801, .. }));
    assert_err_mentions(err, "labels-as-images.idx", "expected 0x00000803");
}

#[test]
fn wrong_type_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = image_header(1, 1, 1);
    bytes[2] = 0x0D; // float
    bytes.extend_from_slice(&[0; 4]);
    let p = put(dir.path(), "float.idx", &bytes);
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, DatasetError::WrongType { found: 0x0D, .. }));
    assert_err_mentions(err, "float.idx", "data type 0x0d");
}

#[test]
fn truncated_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = image_header(10, 28, 28);
    bytes.extend(std::iter::repeat_n(7, 7000));
    let p = put(dir.path(), "short.gz", &gz(&bytes));
    let err = read_idx_images(&p).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: truncated IDX file: header says 10 x 28 x 28 = 7840 bytes of pixels, found 7000",
            p.display()
        )
    );
}

#[test]
fn trailing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = image_header(2, 2, 2);
    bytes.extend_from_slice(&[1; 9]);
    let p = put(dir.path(), "long.idx", &bytes);
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::TrailingBytes {
            expected: 8,
            found: 9,
            ..
        }
    ));
    assert_err_mentions(err, "long.idx", "trailing bytes");
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 2];
    labels.extend_from_slice(&[1, 2, 3]);
    let p = put(dir.path(), "long-labels.idx", &labels);
    assert_err_mentions(
        read_idx_labels(&p).unwrap_err(),
        "long-labels.idx",
        "= 2 bytes of labels, found 3",
    );
}

#[test]
fn truncated_header() {
    let dir = tempfile::tempdir().unwrap();
    let header = image_header(2, 2, 2);
    for len in [0, 3, 4, 15] {
        let name = format!("header{len}.idx");
        let p = put(dir.path(), &name, &header[..len]);
        let err = read_idx_images(&p).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::TruncatedHeader { needed: 16, .. }
        ));
        assert_err_mentions(err, &name, "truncated IDX header");
    }
}

#[test]
fn zero_size_images() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "zero.idx", &image_header(5, 0, 28));
    assert_err_mentions(read_idx_images(&p).unwrap_err(), "zero.idx", "zero size");
    let err = write_idx_images(&p, 0, 28, &[], false).unwrap_err();
    assert!(matches!(err, DatasetError::InvalidWrite { .. }));
    let err = write_idx_images(&p, 2, 2, &[0; 5], false).unwrap_err();
    assert_err_mentions(err, "zero.idx", "whole number");
}

#[test]
fn count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = write_sample(dir.path(), true);
    let lab = dir.path().join("six-labels.gz");
    write_idx_labels(&lab, &[0, 1, 2, 0, 1, 2], true).unwrap();
    let err = ImageSet::load(&img, &lab).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::CountMismatch {
            n_images: 7,
            n_labels: 6,
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("img-idx3-ubyte.gz") && msg.contains("six-labels.gz"),
        "{msg}"
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let (img, _) = write_sample(dir.path(), false);
    let missing = dir.path().join("no-such-labels.gz");
    let err = ImageSet::load(&img, &missing).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }));
    assert_err_mentions(err, "no-such-labels.gz", "");
}

#[test]
fn corrupt_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gz(&image_header(1, 2, 2));
    // Keep the gzip magic, damage the deflate stream and the trailer.
    let n = bytes.len();
    for b in &mut bytes[10..n] {
        *b ^= 0x5a;
    }
    let p = put(dir.path(), "broken.gz", &bytes);
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, DatasetError::Gzip { .. }), "{err}");
    assert_err_mentions(err, "broken.gz", "corrupt gzip");
    // A gzip stream cut short is also corrupt.
    let good = gz(&[image_header(1, 2, 2), vec![1; 4]].concat());
    let p = put(dir.path(), "cut.gz", &good[..good.len() - 6]);
    assert_err_mentions(read_idx_images(&p).unwrap_err(), "cut.gz", "corrupt gzip");
}

#[test]
fn stratified_subset() {
    let set = ImageSet::builtin().unwrap();
    let a = stratified_subset_indices(&set.labels, 1000, 7);
    let b = stratified_subset_indices(&set.labels, 1000, 7);
    let c = stratified_subset_indices(&set.labels, 1000, 8);
    assert_eq!(a, b, "same seed, same subset");
    assert_ne!(a, c, "different seed, different subset");
    assert_eq!(a.len(), 1000);
    assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
    assert_eq!(set.subset(&a).class_counts(), vec![100; 10]);
    // 1003 does not divide by 10: shares differ by at most one.
    let counts = set
        .subset(&stratified_subset_indices(&set.labels, 1003, 1))
        .class_counts();
    assert_eq!(counts.iter().sum::<usize>(), 1003);
    assert!(counts.iter().all(|&k| k == 100 || k == 101), "{counts:?}");
}

#[test]
fn stratified_subset_small_class_and_edges() {
    // Class 1 has only 2 items: it gives both, the others share the rest.
    let labels = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2];
    let idx = stratified_subset_indices(&labels, 10, 3);
    let mut counts = [0; 3];
    for &i in &idx {
        counts[labels[i] as usize] += 1;
    }
    assert_eq!(counts, [4, 2, 4]);
    assert_eq!(
        stratified_subset_indices(&labels, 99, 3),
        (0..14).collect::<Vec<_>>()
    );
    assert!(stratified_subset_indices(&labels, 0, 3).is_empty());
    assert!(stratified_subset_indices(&[], 5, 3).is_empty());
}
