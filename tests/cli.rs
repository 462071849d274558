//! The `geodyn` binary: the quick experiment runs, and bad input gives a clear
//! error naming the file and field, with a failing exit code and no panic.

use std::process::Command;

fn geodyn(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_geodyn"))
        .args(args)
        .output()
        .expect("run geodyn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn assert_clean_failure(args: &[&str], expect: &[&str]) {
    let (ok, _, err) = geodyn(args);
    assert!(!ok, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for e in expect {
        assert!(err.contains(e), "{args:?}: stderr {err:?} lacks {e:?}");
    }
}

#[test]
fn reproduce_weights_quick_writes_a_report_with_baselines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    let (ok, stdout, err) = geodyn(&[
        "reproduce",
        "weights",
        "--quick",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("raw_pixels"), "{stdout}");
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(rep["dataset"]["n"], 500);
    assert_eq!(rep["protocol"]["repeats"], 10);
    let best = rep["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["classifier"] == "knn")
        .map(|r| r["accuracy_mean"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(best > 0.5, "best kNN accuracy {best} (chance 0.1)");
    assert!(out.join("accuracy_vs_time.png").exists());
}

#[test]
fn simulate_and_network_run_on_the_built_in_config() {
    let (ok, stdout, err) = geodyn(&["simulate", "--n-recurrent", "20"]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("arrivals") && stdout.contains("activation path"),
        "{stdout}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let (ok, stdout, err) = geodyn(&[
        "network",
        "weights",
        "--n-recurrent",
        "10",
        "--export",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("refraction ratio"), "{stdout}");
    let lat: ndarray::Array1<f64> = ndarray_npy::read_npy(dir.join("edge_latency_ms.npy")).unwrap();
    let len: ndarray::Array1<f64> = ndarray_npy::read_npy(dir.join("edge_length_um.npy")).unwrap();
    let vel: ndarray::Array1<f64> =
        ndarray_npy::read_npy(dir.join("edge_velocity_um_per_ms.npy")).unwrap();
    assert_eq!(lat.len(), 784 * 10 + 10 * 9);
    for i in 0..lat.len() {
        assert_eq!(lat[i], len[i] / vel[i]);
    }
    assert!(dir.join("README.md").exists());
}

#[test]
fn bad_configs_and_paths_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let base = include_str!("../configs/weights.toml");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        base.replace("velocity_um_per_ms = 100.0", "velocity_um_per_ms = -5.0"),
    )
    .unwrap();
    assert_clean_failure(
        &["simulate", bad.to_str().unwrap()],
        &["bad.toml", "network.velocity_um_per_ms = -5"],
    );
    std::fs::write(&bad, base.replace("[stdp]", "[stdp]\nrate = 2")).unwrap();
    assert_clean_failure(&["network", bad.to_str().unwrap()], &["bad.toml", "rate"]);
    assert_clean_failure(
        &["simulate", "no-such-config"],
        &["no-such-config", "built-in"],
    );
    assert_clean_failure(
        &[
            "simulate",
            "--images",
            "/no/images.gz",
            "--labels",
            "/no/labels.gz",
        ],
        &["/no/images.gz"],
    );
    let trunc = tmp.path().join("trunc.gz");
    let full = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/mnist-10k/images-idx3-ubyte.gz"
    ))
    .unwrap();
    std::fs::write(&trunc, &full[..full.len() / 2]).unwrap();
    let labels = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/mnist-10k/labels-idx1-ubyte.gz"
    );
    assert_clean_failure(
        &[
            "simulate",
            "--images",
            trunc.to_str().unwrap(),
            "--labels",
            labels,
        ],
        &["trunc.gz"],
    );
    assert_clean_failure(
        &["evaluate", tmp.path().to_str().unwrap()],
        &["manifest.json"],
    );
    assert_clean_failure(
        &[
            "encode",
            "weights",
            "--shard",
            "3/2",
            "--out",
            tmp.path().join("x").to_str().unwrap(),
        ],
        &["--shard 3/2"],
    );
}

#[test]
fn help_lists_the_commands() {
    let (ok, stdout, _) = geodyn(&["--help"]);
    assert!(ok);
    for c in [
        "simulate",
        "network",
        "encode",
        "evaluate",
        "run",
        "reproduce",
        "bench",
    ] {
        assert!(stdout.contains(c), "--help lacks {c}");
    }
}
