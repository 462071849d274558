//! The quick versions of experiments 1 and 2, end to end (they run in CI).

use super::*;
use crate::pipeline::Quiet;
use std::path::Path;

fn quick(out: &Path) -> ExperimentOptions {
    ExperimentOptions {
        quick: true,
        out: out.to_path_buf(),
        ..Default::default()
    }
}

#[test]
fn quick_paths_runs_and_beats_chance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = reproduce_paths(&quick(dir.path()), &Quiet).expect("experiment 1 quick");
    assert_eq!(r.experiment, "paths");
    assert_eq!(r.dataset.n, paths::QUICK_IMAGES);
    // One kNN row per paths method (plus the activity control of the same runs).
    let paths_rows = r
        .results
        .iter()
        .filter(|x| x.embedding.starts_with("paths_"));
    assert_eq!(paths_rows.count(), 3);
    assert_eq!(r.protocol.repeats, 10);
    assert_eq!(r.protocol.metric, crate::eval::Metric::Cosine);
    assert!(r.baselines.iter().any(|b| b.embedding == "raw_pixels"));
    for row in &r.results {
        assert_eq!(row.per_class.len(), 10);
        // Chance is 10%; the bar is 50%.
        assert!(
            row.accuracy_mean > 0.5,
            "{}: {}",
            row.embedding,
            row.accuracy_mean
        );
    }
    for f in ["report.json", "report.md", "fig1_paths_pca.png"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let text = std::fs::read_to_string(dir.path().join("report.json")).expect("read report");
    let back: crate::report::Report = serde_json::from_str(&text).expect("parse report");
    assert_eq!(back.results.len(), r.results.len());
}

#[test]
fn quick_stdp_runs_and_beats_chance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = reproduce_stdp(&quick(dir.path()), &Quiet).expect("experiment 2 quick");
    assert_eq!(r.experiment, "stdp");
    let wc = &r.extra["weight_change"];
    let shares: f64 = [
        "up",
        "down",
        "turned_inhibitory",
        "turned_excitatory",
        "unchanged",
    ]
    .iter()
    .map(|k| wc[*k].as_f64().expect("share"))
    .sum();
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    assert!(wc["plastic_edges"].as_u64().expect("count") > 0);
    // Learning changed something.
    assert!(wc["unchanged"].as_f64().expect("share") < 1.0);
    for name in ["original", "learned"] {
        let knn = r
            .results
            .iter()
            .find(|row| {
                row.classifier == crate::eval::Classifier::Knn && row.embedding.ends_with(name)
            })
            .expect("kNN row");
        assert_eq!(knn.per_class.len(), 2);
        // Chance is about 50%; the bar is 80%.
        assert!(
            knn.accuracy_mean > 0.8,
            "{}: {}",
            knn.embedding,
            knn.accuracy_mean
        );
        assert!(r
            .results
            .iter()
            .any(|row| row.classifier == crate::eval::Classifier::LinearSvm
                && row.embedding.ends_with(name)));
    }
    assert!(r
        .baselines
        .iter()
        .any(|b| b.embedding == "raw_pixels" && b.classifier == crate::eval::Classifier::Knn));
    for f in ["report.json", "report.md", "fig2_stdp_weights.png"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
}

/// The velocity sweep on a small network: every (code, velocity) point is
/// run and reported, and the refraction ratios follow from the geometry
/// alone: latency = length / velocity, so the median ratio R / latency is
/// proportional to the velocity (same lengths at every point, same seed).
#[test]
fn velocity_sweep_runs_every_code_and_velocity_with_ratios_proportional_to_velocity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut raw, path) = crate::config::read_raw("weights").expect("built-in config");
    raw.network.n_recurrent = 8;
    raw.simulation.duration_ms = 60.0;
    raw.evaluation.repeats = 2;
    let opts = ExperimentOptions {
        velocity_sweep: true,
        out: dir.path().to_path_buf(),
        data: crate::pipeline::DataSpec {
            limit: Some(60),
            ..Default::default()
        },
        config: Some((raw, path)),
        linear_splits: Some(1),
        ..Default::default()
    };
    let r = reproduce_weights(&opts, &Quiet).expect("velocity sweep");
    let points = r.extra["velocity_sweep"].as_array().expect("sweep points");
    assert_eq!(points.len(), 3 * weights::VELOCITY_SWEEP.len());
    for code in ["rate", "latency", "volley"] {
        let of_code: Vec<_> = points.iter().filter(|p| p["train"] == code).collect();
        assert_eq!(of_code.len(), weights::VELOCITY_SWEEP.len(), "{code}");
        let rr = |p: &serde_json::Value| {
            p["median_refraction_ratio_recurrent"]
                .as_f64()
                .expect("ratio")
        };
        let (v0, r0) = (weights::VELOCITY_SWEEP[0], rr(of_code[0]));
        for (p, v) in of_code.iter().zip(weights::VELOCITY_SWEEP) {
            assert_eq!(p["velocity_um_per_ms"].as_f64(), Some(v));
            let expected = r0 * v / v0;
            assert!(
                (rr(p) - expected).abs() <= 1e-9 * expected,
                "{code} v {v}: ratio {} against {expected}",
                rr(p)
            );
            let label = format!("{code}_v{v}");
            assert!(
                dir.path().join(&label).join("report.json").is_file(),
                "{label}"
            );
            for classifier in ["knn", "ridge"] {
                assert!(
                    r.results.iter().any(|x| x.embedding.ends_with(&label)
                        && x.embedding.starts_with("weights_t")
                        && x.classifier.name() == classifier),
                    "{label} {classifier}"
                );
            }
        }
    }
    assert!(r.baselines.iter().any(|b| b.embedding == "raw_pixels"));
    for f in [
        "velocity_sweep_knn.png",
        "velocity_sweep_ridge.png",
        "report.md",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
}
