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
            at_least: false,
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

#[test]
fn endless_stream_is_refused_after_the_magic() {
    // /dev/zero never ends: the reader must look at 4 bytes, see a bad magic
    // number and stop (it used to read until out of memory).
    let zero = Path::new("/dev/zero");
    if !zero.exists() {
        return;
    }
    let t = std::time::Instant::now();
    let err = read_idx_images(zero).unwrap_err();
    assert!(
        matches!(err, DatasetError::BadMagic { found: 0, .. }),
        "{err}"
    );
    assert_err_mentions(err, "/dev/zero", "bad magic number");
    assert!(matches!(
        read_idx_labels(zero).unwrap_err(),
        DatasetError::BadMagic { .. }
    ));
    assert!(t.elapsed().as_secs_f64() < 1.0);
}

#[test]
fn gzip_bomb_stops_at_the_declared_size() {
    use std::io::Write;
    // 100 x 28 x 28 = 78,400 declared pixel bytes, then 100 MB of zeros,
    // compressed to about 100 KB: the reader must stop just past the
    // declared size, not inflate the whole stream (it used to peak at the
    // decompressed size before noticing the trailing bytes).
    let dir = tempfile::tempdir().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&image_header(100, 28, 28)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        e.write_all(&zeros).unwrap();
    }
    let p = put(dir.path(), "bomb.gz", &e.finish().unwrap());
    let t = std::time::Instant::now();
    let err = read_idx_images(&p).unwrap_err();
    let secs = t.elapsed().as_secs_f64();
    match &err {
        DatasetError::TrailingBytes {
            expected,
            found,
            at_least,
            ..
        } => {
            assert_eq!(*expected, 78_400);
            // What was read: the declared size plus the bounded probe.
            assert!(*at_least && *found <= expected + (1 << 16), "{err}");
        }
        other => panic!("expected trailing bytes, got {other}"),
    }
    assert!(secs < 1.0, "took {secs} s");
    assert_err_mentions(err, "bomb.gz", "found at least");
}

#[test]
fn absurd_declared_size_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    // 60,000 x 65,536 x 65,536 overflows nothing on 64 bits but is far past the cap.
    let p = put(
        dir.path(),
        "huge.idx",
        &image_header(60_000, 65_536, 65_536),
    );
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, DatasetError::TooLarge { .. }), "{err}");
    assert_err_mentions(err, "huge.idx", "too large");
    // A small file declaring a large but allowed size is truncated, found = its real size.
    let mut bytes = image_header(1000, 1000, 1000);
    bytes.extend_from_slice(&[7; 10]);
    let p = put(dir.path(), "short.idx", &bytes);
    assert!(matches!(
        read_idx_images(&p).unwrap_err(),
        DatasetError::Truncated { found: 10, .. }
    ));
}

#[test]
fn io_errors_show_their_cause_once() {
    // The cause is the error's source(), so a chain printer (`{:#}`, as the
    // CLI uses) shows "No such file" once, and no layer repeats it.
    let err = read_idx_images(Path::new("/no/such/images.idx")).unwrap_err();
    let top = err.to_string();
    let cause = std::error::Error::source(&err).map(|c| c.to_string());
    let cause = cause.expect("the I/O error is the source");
    assert!(!top.contains(&cause), "{top:?} repeats its cause {cause:?}");
    assert!(top.contains("/no/such/images.idx"), "{top}");
}

/// IDX reader fuzz: seeded random mutations of a small valid images/labels
/// pair (header bytes, dimensions, truncations, trailing data, gzip
/// wrapping, damaged gzip members and trailers) must each give `Ok` or a
/// `DatasetError`, never a panic, and quickly.
#[test]
fn fuzz_idx_reader_never_panics() {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    let dir = tempfile::tempdir().unwrap();
    let (rows, cols, pixels, labels) = sample();
    let mut images = image_header(7, rows as u32, cols as u32);
    images.extend_from_slice(&pixels);
    let mut label_file = vec![0, 0, 8, 1, 0, 0, 0, 7];
    label_file.extend_from_slice(&labels);
    let mut rng = ChaCha8Rng::seed_from_u64(0x1d8);
    let (mut cases, mut ok, mut errors, mut panics, mut slow) = (0, 0, 0, 0, 0);
    for case in 0..2000 {
        let base = if case % 2 == 0 { &images } else { &label_file };
        let mut bytes = base.clone();
        for _ in 0..rng.gen_range(1..=3) {
            match rng.gen_range(0..7) {
                // A random byte in the header.
                0 => {
                    let i = rng.gen_range(0..bytes.len().clamp(1, 16));
                    if i < bytes.len() {
                        bytes[i] = rng.gen();
                    }
                }
                // A dimension set to an edge value.
                1 if bytes.len() >= 8 => {
                    let d = [0u32, 1, 2, 255, 65_536, u32::MAX, rng.gen()][rng.gen_range(0..7)];
                    let slot = 4 * rng.gen_range(1..=3);
                    if slot + 4 <= bytes.len() {
                        bytes[slot..slot + 4].copy_from_slice(&d.to_be_bytes());
                    }
                }
                // Truncation anywhere.
                2 => bytes.truncate(rng.gen_range(0..=bytes.len())),
                // Trailing data.
                3 => bytes.extend((0..rng.gen_range(1..300)).map(|_| rng.gen::<u8>())),
                // A random byte in the body.
                4 if !bytes.is_empty() => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] ^= rng.gen::<u8>() | 1;
                }
                // The ndims byte or the type byte.
                5 if bytes.len() >= 4 => bytes[[2, 3][rng.gen_range(0..2)]] = rng.gen(),
                _ => {}
            }
        }
        if rng.gen_bool(0.5) {
            let mut z = gz(&bytes);
            match rng.gen_range(0..6) {
                // Bogus trailer: CRC or declared size (ISIZE).
                0 => {
                    let n = z.len();
                    let i = n - 1 - rng.gen_range(0..8);
                    z[i] = z[i].wrapping_add(rng.gen_range(1..=255));
                }
                // Cut short.
                1 => z.truncate(rng.gen_range(0..z.len())),
                // Damaged deflate data.
                2 if z.len() > 12 => {
                    let i = rng.gen_range(10..z.len());
                    z[i] ^= rng.gen::<u8>() | 1;
                }
                // A second member (legal) or garbage after the member.
                3 => z.extend(gz(&[1, 2, 3])),
                4 => z.extend((0..rng.gen_range(1..20)).map(|_| rng.gen::<u8>())),
                _ => {}
            }
            bytes = z;
        }
        let p = put(dir.path(), &format!("case{case}"), &bytes);
        let lab = put(dir.path(), &format!("lab{case}"), &label_file);
        let t = std::time::Instant::now();
        let result = std::panic::catch_unwind(|| {
            (
                read_idx_images(&p).is_ok(),
                read_idx_labels(&p).is_ok(),
                ImageSet::load(&p, &lab).is_ok(),
            )
        });
        if t.elapsed().as_secs_f64() > 1.0 {
            slow += 1;
        }
        cases += 1;
        match result {
            Ok((a, b, c)) => {
                let n_ok = [a, b, c].iter().filter(|&&x| x).count();
                ok += n_ok;
                errors += 3 - n_ok;
            }
            Err(_) => panics += 1,
        }
    }
    // The totals, for `--nocapture` (the report of a fuzz run).
    eprintln!("idx fuzz: {cases} cases, {ok} Ok, {errors} errors, {panics} panics, {slow} slow");
    assert_eq!(panics, 0, "{panics} panics in {cases} cases");
    assert_eq!(slow, 0, "{slow} cases over 1 s");
    // The mutations must exercise both outcomes.
    assert!(ok > 0 && errors > 1000, "ok {ok}, errors {errors}");
}
