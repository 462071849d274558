//! The one runner, checked across commands: the same row gets the same
//! stimulus everywhere, experiment 1 is `run paths` plus comparisons, the
//! stimulus follows the network's input refractory periods, and progress
//! reaches an observer while the library prints nothing.

use geodyn::config;
use geodyn::dataset::{stratified_subset_indices, ImageSet};
use geodyn::experiments::{reproduce_paths, ExperimentOptions};
use geodyn::pipeline::{
    encode, evaluate, row_seed, Collect, DataSpec, EncodeData, EncodeOptions, Encoder,
    EvaluateOptions, Event, Quiet, Scratch,
};
use geodyn::record::RecordSpec;
use std::path::Path;

const WEIGHTS: &str = include_str!("../configs/weights.toml");

fn check(text: &str) -> config::ExperimentConfig {
    config::parse(text, Path::new("t.toml"))
        .and_then(|r| r.check(Path::new("t.toml")))
        .expect("test config")
}

/// A small experiment-3 network driven by Poisson trains.
fn poisson_config() -> config::ExperimentConfig {
    check(
        &WEIGHTS
            .replace("n_recurrent = 200", "n_recurrent = 12")
            .replace("duration_ms = 600.0", "duration_ms = 100.0")
            .replace(
                "snapshot_times_ms = [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]",
                "snapshot_times_ms = [100.0]",
            )
            .replace("train = \"regular\"", "train = \"poisson\"")
            .replace("linear = [\"svm\"]", "linear = []"),
    )
}

#[test]
fn simulate_and_encode_run_the_same_poisson_stimulus_for_a_row() {
    let cfg = poisson_config();
    assert_eq!(cfg.stimulus().train, geodyn::stimulus::TrainKind::Poisson);
    let all = ImageSet::builtin().unwrap();
    let idx = stratified_subset_indices(&all.labels, 20, 0);
    let set = all.subset(&idx);
    let tmp = tempfile::tempdir().unwrap();
    let data = EncodeData {
        reference: &set,
        reference_rows: Some(&idx),
        query: None,
    };
    let mut o = EncodeOptions::new(tmp.path());
    o.chunk = 7;
    encode(&cfg, &data, &o, &Quiet).unwrap();
    let activity: ndarray::Array2<f32> =
        ndarray_npy::read_npy(tmp.path().join("activity.npy")).unwrap();

    // What `geodyn simulate --image I` runs: Encoder::simulate with row I.
    let net = cfg.build_network().unwrap();
    let encoder = Encoder::new(&net, &cfg).unwrap();
    let bin = cfg.embedding().activity_bin_ms();
    let spec = RecordSpec {
        activity_bin_ms: Some(bin),
        ..Default::default()
    };
    let n_in = net.n_input();
    let mut scratch = Scratch::default();
    for row in [0, 5, 13] {
        let rec = encoder
            .simulate(&mut scratch, set.image(row), row, &spec)
            .unwrap();
        let bins = rec.activity_bins;
        let expect: Vec<f32> = rec.activity[n_in * bins..]
            .chunks(bins)
            .flat_map(|node| node.iter().take(activity.ncols() / 12).map(|&c| c as f32))
            .collect();
        assert_eq!(activity.row(row).to_vec(), expect, "row {row}");
    }
    // The trains are per row: the same image as two rows draws two trains,
    // and row 0 does not reuse the network's seed.
    assert_ne!(
        encoder.stimulus(set.image(3), 3),
        encoder.stimulus(set.image(3), 4)
    );
    assert_ne!(row_seed(cfg.seed(), 0), cfg.seed());
}

#[test]
fn reproduce_paths_quick_is_run_paths_plus_comparisons() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("reproduce");
    let opts = ExperimentOptions {
        quick: true,
        out: a.clone(),
        ..Default::default()
    };
    let rep = reproduce_paths(&opts, &Quiet).unwrap();

    // `geodyn run paths --limit 500`.
    let b = tmp.path().join("run");
    let cfg = check(config::builtin_text("paths").unwrap());
    let (set, rows) = geodyn::pipeline::load_images(&DataSpec {
        files: None,
        limit: Some(500),
    })
    .unwrap();
    let data = EncodeData {
        reference: &set,
        reference_rows: rows.as_deref(),
        query: None,
    };
    encode(&cfg, &data, &EncodeOptions::new(&b), &Quiet).unwrap();
    let mut eo = EvaluateOptions::new(&b);
    eo.figures = false;
    let run = evaluate(&b, &eo, &Quiet).unwrap();

    let bytes = |d: &Path| std::fs::read(d.join("paths_both.npy")).unwrap();
    assert_eq!(bytes(&a), bytes(&b), "the same embedding, byte for byte");
    let find = |rows: &[geodyn::report::ResultRow], name: &str| {
        rows.iter()
            .find(|r| r.embedding == name && r.classifier == geodyn::eval::Classifier::Knn)
            .cloned()
            .unwrap_or_else(|| panic!("{name} row"))
    };
    for name in ["paths_both", "activity"] {
        assert_eq!(find(&rep.results, name), find(&run.results, name));
    }
    assert_eq!(
        find(&rep.baselines, "raw_pixels"),
        find(&run.baselines, "raw_pixels")
    );
    assert_eq!(rep.protocol, run.protocol);
}

#[test]
fn the_stimulus_is_capped_by_the_network_input_refractory_period() {
    // An edge-list network whose one input node has R = 5 ms: a full pixel at
    // 1000 Hz is capped at 200 Hz, i.e. 120 spikes in 600 ms.
    let cfg = check(
        r#"
experiment = "cap"
[network]
builder = "edge_list"
[[network.nodes]]
position_um = [0.0, 0.0, 0.0]
population = "input"
refractory_period_ms = 5.0
[[network.nodes]]
position_um = [30.0, 40.0, 0.0]
[[network.edges]]
source = 0
target = 1
velocity_um_per_ms = 10.0
weight = 1.0
[stimulus]
max_rate_hz = 1000.0
[simulation]
duration_ms = 600.0
[embedding]
kind = "activity"
"#,
    );
    let net = cfg.build_network().unwrap();
    let encoder = Encoder::new(&net, &cfg).unwrap();
    let train = encoder.stimulus(&[255], 0);
    assert_eq!(train.len(), 120);
    assert!((train[0].time_ms - 2.5).abs() < 1e-12);
    assert!(train.windows(2).all(|w| w[1].time_ms - w[0].time_ms >= 5.0));
    // And the engine loses none of them to the input's refractoriness.
    let rec = encoder
        .simulate(&mut Scratch::default(), &[255], 0, &RecordSpec::default())
        .unwrap();
    assert_eq!(rec.totals.lost_external, 0);
    assert_eq!(rec.totals.external_activations, 120);
}

#[test]
fn progress_goes_to_the_observer() {
    let cfg = poisson_config();
    let all = ImageSet::builtin().unwrap();
    let idx = stratified_subset_indices(&all.labels, 30, 1);
    let set = all.subset(&idx);
    let data = EncodeData {
        reference: &set,
        reference_rows: Some(&idx),
        query: None,
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut o = EncodeOptions::new(tmp.path());
    o.chunk = 8;
    let seen = Collect::new();
    encode(&cfg, &data, &o, &seen).unwrap();
    let ev = seen.events();
    assert!(
        matches!(&ev[0], Event::Started { total: 30, .. }),
        "{:?}",
        ev[0]
    );
    let advanced: usize = ev
        .iter()
        .map(|e| match e {
            Event::Advanced { n } => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(advanced, 30);
    let commits: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::ChunkCommitted { rows_done, .. } => Some(*rows_done),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [8, 16, 24, 30]);
    // The encode's task ends, then the store commits (steps on disk).
    let last_task = ev
        .iter()
        .rev()
        .find(|e| !matches!(e, Event::Durable { .. }));
    assert_eq!(last_task, Some(&Event::Finished));
    assert_eq!(
        ev.last(),
        Some(&Event::Durable {
            step: "manifest in place".into()
        })
    );

    let seen = Collect::new();
    let mut eo = EvaluateOptions::new(tmp.path());
    eo.figures = false;
    let rep = evaluate(tmp.path(), &eo, &seen).unwrap();
    let scored: Vec<String> = seen
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Scored { row, .. } => Some(row.embedding),
            _ => None,
        })
        .collect();
    let rows: Vec<String> = rep
        .results
        .iter()
        .chain(&rep.baselines)
        .map(|r| r.embedding.clone())
        .collect();
    assert_eq!(scored, rows, "every report row was announced as scored");
}

#[test]
fn the_library_prints_nothing() {
    // Only the command line (src/cli, src/main.rs) may write to the
    // terminal; unit tests (tests.rs files, #[cfg(test)] modules) may.
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("cli") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                && !p.ends_with("main.rs")
                && !p.ends_with("tests.rs")
            {
                let text = std::fs::read_to_string(&p).unwrap();
                let library = text.split("#[cfg(test)]").next().unwrap_or("");
                for (i, line) in library.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for bad in ["println!", "eprintln!", "print!(", "eprint!(", "indicatif"] {
                        if code.contains(bad) {
                            out.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "the library prints:\n{}",
        found.join("\n")
    );
}
