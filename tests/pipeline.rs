//! End-to-end tests of the pipeline on the built-in digits: resume, shards,
//! held-out protocol, and a full encode + evaluate whose accuracy must be far
//! above chance.

use geodyn::dataset::{stratified_subset_indices, write_idx_images, write_idx_labels, ImageSet};
use geodyn::pipeline::{
    encode, evaluate, EncodeData, EncodeOptions, EvaluateOptions, Event, Observer, PipelineError,
    Quiet,
};
use std::path::Path;

mod common;
use common::{small_config, subset};

fn quiet(dir: &Path) -> EncodeOptions {
    let mut o = EncodeOptions::new(dir);
    o.chunk = 16;
    o
}

/// Stops an encode after `n` chunks have been committed (as Ctrl-C would).
struct StopAfter {
    n: usize,
    committed: std::sync::atomic::AtomicUsize,
}

impl Observer for StopAfter {
    fn observe(&self, event: Event) {
        if let Event::ChunkCommitted { .. } = event {
            self.committed
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn should_stop(&self) -> bool {
        self.committed.load(std::sync::atomic::Ordering::SeqCst) >= self.n
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn interrupted_encode_resumes_to_the_same_bytes() {
    let cfg = small_config(8, 100.0, "");
    let (set, rows) = subset(50, 1);
    let data = EncodeData {
        reference: &set,
        reference_rows: Some(&rows),
        query: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let m = encode(&cfg, &data, &quiet(&whole), &Quiet).unwrap();
    assert_eq!(m.n_rows, 50);

    let cut = tmp.path().join("cut");
    let stop = StopAfter {
        n: 2,
        committed: 0.into(),
    };
    match encode(&cfg, &data, &quiet(&cut), &stop) {
        Err(PipelineError::Interrupted(2)) => {}
        other => panic!("expected an interruption, got {other:?}"),
    }
    // Nothing looks complete: no manifest, no .npy.
    assert!(!cut.join("manifest.json").exists());
    assert!(
        files(&cut).is_empty(),
        "a half-written run must not leave .npy files"
    );
    assert!(evaluate(&cut, &EvaluateOptions::new(&cut), &Quiet).is_err());
    let m2 = encode(&cfg, &data, &quiet(&cut), &Quiet).unwrap();
    assert_eq!(m2.totals, m.totals);
    assert_eq!(files(&cut), files(&whole));
    assert!(!cut.join("partial").exists());

    // A different config in the same directory is refused, not mixed in.
    let other = small_config(9, 100.0, "");
    let err = encode(&other, &data, &quiet(&cut), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--restart"), "{err}");
}

#[test]
fn shards_are_disjoint_parts_of_the_whole() {
    let cfg = small_config(6, 80.0, "");
    let (set, rows) = subset(30, 2);
    let data = EncodeData {
        reference: &set,
        reference_rows: Some(&rows),
        query: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    encode(&cfg, &data, &quiet(&tmp.path().join("all")), &Quiet).unwrap();
    let all: ndarray::Array2<f32> =
        ndarray_npy::read_npy(tmp.path().join("all/activity.npy")).unwrap();
    let mut stacked = Vec::new();
    for k in 0..3 {
        let mut o = quiet(&tmp.path().join(format!("s{k}")));
        o.shard = Some((k, 3));
        let m = encode(&cfg, &data, &o, &Quiet).unwrap();
        assert_eq!(m.first_row, k * 10);
        let part: ndarray::Array2<f32> =
            ndarray_npy::read_npy(tmp.path().join(format!("s{k}/activity.npy"))).unwrap();
        stacked.extend(part.iter().copied());
    }
    assert_eq!(stacked, all.iter().copied().collect::<Vec<_>>());
    let err = evaluate(
        &tmp.path().join("s0"),
        &EvaluateOptions::new(tmp.path()),
        &Quiet,
    )
    .unwrap_err();
    assert!(err.to_string().contains("shard"));
    // Merged in any order, the shards give the unsharded files byte for byte.
    let dirs: Vec<_> = [2, 0, 1]
        .iter()
        .map(|k| tmp.path().join(format!("s{k}")))
        .collect();
    let merged = geodyn::pipeline::merge_shards(&dirs, &tmp.path().join("merged"), &Quiet).unwrap();
    assert_eq!(merged.n_rows, 30);
    assert_eq!(
        files(&tmp.path().join("merged")),
        files(&tmp.path().join("all"))
    );
    assert!(
        geodyn::pipeline::merge_shards(&dirs[..2], &tmp.path().join("m2"), &Quiet).is_err(),
        "a missing shard is refused"
    );
}

#[test]
fn run_on_built_in_digits_reports_accuracy_far_above_chance() {
    let cfg = small_config(40, 300.0, "");
    let (set, rows) = subset(300, 3);
    let data = EncodeData {
        reference: &set,
        reference_rows: Some(&rows),
        query: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    encode(&cfg, &data, &quiet(&dir), &Quiet).unwrap();
    let eo = EvaluateOptions::new(&dir);
    let rep = evaluate(&dir, &eo, &Quiet).unwrap();
    assert_eq!(rep.experiment, "weights");
    assert_eq!(rep.dataset.n, 300);
    assert_eq!(rep.protocol.kind, geodyn::report::ProtocolKind::RandomSplit);
    assert_eq!(
        (
            rep.protocol.n_reference,
            rep.protocol.n_query,
            rep.protocol.repeats
        ),
        (270, 30, 10)
    );
    assert_eq!(rep.protocol.k, 5);
    assert_eq!(rep.protocol.metric, geodyn::eval::Metric::Euclidean);
    let names: Vec<&str> = rep.results.iter().map(|r| r.embedding.as_str()).collect();
    assert_eq!(names, ["weights_t150", "weights_t300", "activity"]);
    for r in &rep.results {
        assert_eq!(r.n_recurrent, Some(40));
        assert_eq!(r.per_class.len(), 10);
        // Ten classes: chance is 10%; every view at least three times that.
        assert!(
            r.accuracy_mean > 0.3,
            "{}: {}",
            r.embedding,
            r.accuracy_mean
        );
    }
    let best = rep
        .results
        .iter()
        .map(|r| r.accuracy_mean)
        .fold(0.0, f64::max);
    assert!(best > 0.5, "best view {best}");
    assert_eq!(rep.results[0].dim, 40 * 39);
    let base: Vec<&str> = rep.baselines.iter().map(|r| r.embedding.as_str()).collect();
    assert_eq!(
        base,
        [
            "raw_pixels",
            "random_projection_120",
            "random_projection_1560"
        ]
    );
    assert!(rep.baselines[0].accuracy_mean > 0.7);
    assert!(rep.timing.encode_s > 0.0 && rep.timing.arrivals_per_s.unwrap_or(0.0) > 0.0);
    for f in [
        "report.json",
        "report.md",
        "accuracy_vs_time.png",
        "confusion.png",
        "pca.png",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let back: geodyn::report::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(back, rep);

    // The trajectory at 300 ms is the two snapshots side by side.
    let mut eo = EvaluateOptions::new(tmp.path().join("traj"));
    eo.figures = false;
    eo.trajectory = true;
    let t = evaluate(&dir, &eo, &Quiet).unwrap();
    let traj = t
        .results
        .iter()
        .find(|r| r.embedding == "trajectory_t300")
        .expect("trajectory row");
    assert_eq!(traj.dim, 2 * 40 * 39);
    assert!(traj.accuracy_mean > 0.3);
}

#[test]
fn held_out_query_set_is_classified_against_the_reference() {
    let cfg = small_config(10, 100.0, "");
    let all = ImageSet::builtin().unwrap();
    let idx = stratified_subset_indices(&all.labels, 120, 4);
    let (r_idx, q_idx) = idx.split_at(100);
    let reference = all.subset(r_idx);
    let q = all.subset(q_idx);
    let tmp = tempfile::tempdir().unwrap();
    let (qi, ql) = (
        tmp.path().join("q-images.idx"),
        tmp.path().join("q-labels.idx.gz"),
    );
    write_idx_images(&qi, 28, 28, &q.pixels, false).unwrap();
    write_idx_labels(&ql, &q.labels, true).unwrap();
    let query = ImageSet::load(&qi, &ql).unwrap();
    let data = EncodeData {
        reference: &reference,
        reference_rows: Some(r_idx),
        query: Some(&query),
    };
    let dir = tmp.path().join("held");
    encode(&cfg, &data, &quiet(&dir), &Quiet).unwrap();
    let mut eo = EvaluateOptions::new(&dir);
    eo.figures = false;
    let rep = evaluate(&dir, &eo, &Quiet).unwrap();
    assert_eq!(rep.protocol.kind, geodyn::report::ProtocolKind::HeldOut);
    assert_eq!(
        (
            rep.protocol.n_reference,
            rep.protocol.n_query,
            rep.protocol.repeats
        ),
        (100, 20, 1)
    );
    assert_eq!(rep.dataset.n_query_set, Some(20));
    let total: u64 = rep.baselines[0].confusion.iter().flatten().sum();
    assert_eq!(total, 20);
}

#[test]
fn images_of_the_wrong_size_are_refused_with_the_file_named() {
    let cfg = small_config(5, 50.0, "");
    let tmp = tempfile::tempdir().unwrap();
    let (i, l) = (
        tmp.path().join("small.idx"),
        tmp.path().join("small-labels.idx"),
    );
    write_idx_images(&i, 10, 10, &[0u8; 300], false).unwrap();
    write_idx_labels(&l, &[0, 1, 2], false).unwrap();
    let set = ImageSet::load(&i, &l).unwrap();
    let data = EncodeData {
        reference: &set,
        reference_rows: None,
        query: None,
    };
    let err = encode(&cfg, &data, &quiet(&tmp.path().join("o")), &Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("small.idx") && err.contains("10 x 10") && err.contains("28 x 28"),
        "{err}"
    );
}
