//! The geometry controls (issue 13 part 2) through the binary: `reproduce
//! weights --shuffled-latencies` encodes the shuffled network beside the
//! built one and reports its rows beside the normal views, on the same splits.

mod common;

use std::path::Path;

use common::read_json as json;

/// Runs geodyn: (success, stderr).
fn geodyn(args: &[&str]) -> (bool, String) {
    let (ok, _, err) = common::geodyn(args);
    (ok, err)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn reproduce_weights_with_shuffled_latencies_reports_the_control_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("small.toml");
    std::fs::write(&config, common::small_text(10, 100.0)).unwrap();
    let out = tmp.path().join("w");
    let (ok, err) = geodyn(&[
        "reproduce",
        "weights",
        "--config",
        s(&config),
        "--limit",
        "30",
        "--threads",
        "2",
        "--shuffled-latencies",
        "--out",
        s(&out),
    ]);
    assert!(ok, "{err}");
    let control = json(&out.join("shuffled_latencies").join("manifest.json"));
    assert_eq!(control["network_control"]["kind"], "shuffled_latencies");
    let main = json(&out.join("manifest.json"));
    assert!(main.get("network_control").is_none(), "{main}");
    assert_eq!(main["n_rows"], control["n_rows"]);

    let rep = json(&out.join("report.json"));
    let rows = rep["results"].as_array().unwrap();
    let (plain, shuffled): (Vec<_>, Vec<_>) = rows.iter().partition(|r| {
        !r["embedding"]
            .as_str()
            .unwrap()
            .ends_with("_shuffled_latencies")
    });
    assert!(!plain.is_empty());
    // One control row per view row: same readout, same splits.
    assert_eq!(plain.len(), shuffled.len(), "{rows:?}");
    for p in &plain {
        let name = format!("{}_shuffled_latencies", p["embedding"].as_str().unwrap());
        let c = shuffled
            .iter()
            .find(|r| r["embedding"] == name.as_str() && r["classifier"] == p["classifier"])
            .unwrap_or_else(|| panic!("no row {name}"));
        assert_eq!(c["dim"], p["dim"]);
        assert_eq!(
            c["accuracies"].as_array().unwrap().len(),
            p["accuracies"].as_array().unwrap().len()
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("_shuffled_latencies"),
        "report.md lacks the rows"
    );
}

#[test]
fn encode_takes_one_control_and_the_other_experiments_none() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e");
    let (ok, err) = geodyn(&[
        "encode",
        "weights",
        "--limit",
        "10",
        "--n-recurrent",
        "5",
        "--shuffled-latencies",
        "--mean-latencies",
        "--out",
        s(&out),
    ]);
    assert!(!ok && err.contains("--mean-latencies"), "{err}");
    let (ok, err) = geodyn(&["reproduce", "paths", "--quick", "--mean-latencies"]);
    assert!(!ok && err.contains("reproduce weights"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_control_encode_records_itself_and_is_another_job() {
    use geodyn::network::NetworkControl;
    use geodyn::pipeline::{encode, EncodeOptions, Quiet};
    let cfg = common::small_config(5, 50.0, "");
    let (set, rows) = common::subset(6, 1);
    let data = common::reference(&set, Some(&rows));
    let tmp = tempfile::tempdir().unwrap();
    let mut o = EncodeOptions::new(tmp.path().join("mean"));
    o.network_control = Some(NetworkControl::MeanLatencies);
    let m = encode(&cfg, &data, &o, &Quiet).unwrap();
    assert_eq!(m.network_control, Some(NetworkControl::MeanLatencies));
    // A resume sees the same job; the same directory without the control is
    // another job, refused rather than mixed.
    assert_eq!(encode(&cfg, &data, &o, &Quiet).unwrap().files, m.files);
    let err = encode(&cfg, &data, &EncodeOptions::new(&o.out), &Quiet).unwrap_err();
    assert!(err.to_string().contains("network control"), "{err}");
    let plain = encode(
        &cfg,
        &data,
        &EncodeOptions::new(tmp.path().join("p")),
        &Quiet,
    )
    .unwrap();
    assert!(plain.network_control.is_none());
    assert_eq!(plain.views, m.views);
}
