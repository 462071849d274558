//! The `geodyn` binary: the quick experiment runs, and bad input gives a clear
//! error naming the file and field, with a failing exit code and no panic.

mod common;

use std::process::Command;

use common::geodyn;

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

// Issue 9: every bad input a clear error, nothing hangs, nothing panics.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Runs geodyn with stdout and stderr redirected as given, killing it after
/// `limit`; returns (exit code, stderr). A kill is a test failure.
fn geodyn_with(
    args: &[&str],
    stdout: Stdio,
    stderr_to: Option<&Path>,
    limit: Duration,
) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_geodyn"));
    cmd.args(args).stdout(stdout);
    let (code, err) = common::run_limited(cmd, stderr_to, limit, &format!("{args:?}"));
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    (code, err)
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

/// Writes a raw IDX images/labels pair of `labels.len()` images of
/// `rows x cols` into `dir`.
fn idx_pair(dir: &Path, name: &str, rows: usize, cols: usize, labels: &[u8]) -> (PathBuf, PathBuf) {
    let (i, l) = (
        dir.join(format!("{name}-images.idx")),
        dir.join(format!("{name}-labels.idx")),
    );
    let pixels: Vec<u8> = (0..labels.len() * rows * cols)
        .map(|k| (k % 251) as u8)
        .collect();
    geodyn::dataset::write_idx_images(&i, rows, cols, &pixels, false).unwrap();
    geodyn::dataset::write_idx_labels(&l, labels, false).unwrap();
    (i, l)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn endless_images_file_is_a_bad_magic_number() {
    // Before: read /dev/zero until out of memory.
    let (_, l) = idx_pair(tempfile::tempdir().unwrap().path(), "x", 28, 28, &[0]);
    let (code, err) = geodyn_with(
        &["simulate", "--images", "/dev/zero", "--labels", s(&l)],
        Stdio::null(),
        None,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("bad magic number"),
        "{err}"
    );
}

#[test]
fn full_stdout_is_an_error_exit_with_a_message() {
    // Before: panicked with exit 101 ("failed printing to stdout").
    for args in [
        &["simulate", "--n-recurrent", "5"][..],
        &["network", "--n-recurrent", "5"][..],
    ] {
        let (code, err) = geodyn_with(args, dev_full(), None, Duration::from_secs(60));
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains("standard output") && err.contains("No space left"),
            "{err}"
        );
    }
}

#[test]
fn full_stderr_does_not_stop_an_encode() {
    // Before: the first progress line panicked (exit 101) and lost the encode.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let args = [
        "encode",
        "weights",
        "--limit",
        "20",
        "--n-recurrent",
        "5",
        "--out",
        s(&out),
    ];
    let (code, _) = geodyn_with(
        &args,
        Stdio::null(),
        Some(Path::new("/dev/full")),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0));
    assert!(out.join("manifest.json").exists());
}

#[test]
fn a_reader_that_goes_away_is_a_quiet_success() {
    // Before: killed by SIGPIPE (no exit code). Now: EPIPE, exit 0, no message.
    let mut child = Command::new(env!("CARGO_BIN_EXE_geodyn"))
        .args(["network", "--n-recurrent", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before geodyn has built its network and written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn bench_arguments_that_cannot_be_honoured_are_refused() {
    // Before: --digits 0 silently timed one digit; --n 0 timed 20 vectors.
    assert_clean_failure(&["bench", "engine", "--digits", "0"], &["--digits 0"]);
    assert_clean_failure(&["bench", "knn", "--n", "0", "--dim", "4"], &["--n 0"]);
}

#[test]
fn bench_engine_reports_cpu_time_per_network_size_and_recording() {
    let (ok, out, err) = geodyn(&[
        "bench",
        "engine",
        "--digits",
        "2",
        "--n-recurrent",
        "10,20",
        "--record",
    ]);
    assert!(ok, "{err}");
    let blocks: Vec<&str> = out.split("engine benchmark:").skip(1).collect();
    assert_eq!(blocks.len(), 2, "{out}");
    for (b, n) in blocks.iter().zip([10, 20]) {
        assert!(b.contains(&format!("-> {n} recurrent")), "{b}");
        assert!(b.contains("recording as an encode"), "{b}");
        // Arrivals per second by CPU time, a positive finite number.
        let rate: f64 = b
            .lines()
            .find(|l| l.contains("arrivals per second"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|x| x.parse().ok())
            .unwrap_or(f64::NAN);
        assert!(rate.is_finite() && rate > 0.0, "{b}");
    }
}

#[test]
fn empty_networks_and_datasets_are_refused_before_work() {
    // Before: both wrote a "complete" encode of empty vectors.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    assert_clean_failure(
        &[
            "encode",
            "weights",
            "--limit",
            "20",
            "--n-recurrent",
            "0",
            "--out",
            s(&out),
        ],
        &["no recurrent nodes"],
    );
    assert!(!out.join("manifest.json").exists());
    assert_clean_failure(
        &[
            "encode",
            "weights",
            "--limit",
            "0",
            "--n-recurrent",
            "5",
            "--out",
            s(&out),
        ],
        &["limit of 0"],
    );
    assert!(!out.exists());
}

#[test]
fn labels_must_cover_their_classes() {
    // Before: one label 12 among 0..=9 gave a 13-class report.
    let tmp = tempfile::tempdir().unwrap();
    let mut labels: Vec<u8> = (0..20).map(|k| k % 10).collect();
    labels[3] = 12;
    let (i, l) = idx_pair(tmp.path(), "gap", 28, 28, &labels);
    assert_clean_failure(
        &[
            "simulate",
            "--n-recurrent",
            "5",
            "--images",
            s(&i),
            "--labels",
            s(&l),
        ],
        &["gap-labels.idx", "classes 10, 11 never appear"],
    );
    // A query set may lack classes, but not bring new ones.
    let (ri, rl) = idx_pair(
        tmp.path(),
        "ref",
        28,
        28,
        &(0..20).map(|k| k % 10).collect::<Vec<_>>(),
    );
    let (qi, ql) = idx_pair(tmp.path(), "query", 28, 28, &[1, 2, 12]);
    let out = tmp.path().join("o");
    assert_clean_failure(
        &[
            "encode",
            "weights",
            "--n-recurrent",
            "5",
            "--images",
            s(&ri),
            "--labels",
            s(&rl),
            "--query-images",
            s(&qi),
            "--query-labels",
            s(&ql),
            "--out",
            s(&out),
        ],
        &["query-labels.idx", "label 12", "ref-labels.idx"],
    );
}

#[test]
fn image_shape_must_match_the_input_grid() {
    // Before: 14 x 56 images (784 pixels) ran scrambled onto the 28 x 28 grid.
    let tmp = tempfile::tempdir().unwrap();
    let labels: Vec<u8> = (0..10).collect();
    let (i, l) = idx_pair(tmp.path(), "wide", 14, 56, &labels);
    assert_clean_failure(
        &[
            "simulate",
            "--n-recurrent",
            "5",
            "--images",
            s(&i),
            "--labels",
            s(&l),
        ],
        &["wide-images.idx", "14 x 56", "28 x 28"],
    );
}

#[test]
fn run_checks_its_splits_before_encoding() {
    // Before: 3 images were encoded, then kNN with k = 5 failed on 2 references.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    assert_clean_failure(
        &[
            "run",
            "weights",
            "--limit",
            "3",
            "--n-recurrent",
            "5",
            "--out",
            s(&out),
        ],
        &["3 rows", "k = 5"],
    );
    assert!(!out.exists(), "nothing may be encoded");
    // The experiments check the same before they encode.
    assert_clean_failure(
        &[
            "reproduce",
            "weights",
            "--quick",
            "--limit",
            "3",
            "--out",
            s(&out),
        ],
        &["3 rows", "k = 5"],
    );
    assert!(!out.exists(), "nothing may be encoded");
}

#[test]
fn config_arrays_of_the_wrong_length_and_huge_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let base = include_str!("../configs/paths.toml");
    let bad = tmp.path().join("bad.toml");
    // Before: the third number was silently dropped.
    std::fs::write(
        &bad,
        base.replace("tortuosity = [1.0, 1.3]", "tortuosity = [1.0, 1.3, 2.0]"),
    )
    .unwrap();
    assert_clean_failure(
        &["network", s(&bad)],
        &["bad.toml", "tortuosity", "exactly 2"],
    );
    // Before: the message spelled out all 301 digits.
    std::fs::write(
        &bad,
        base.replace("velocity_um_per_ms = 100.0", "velocity_um_per_ms = -1e300"),
    )
    .unwrap();
    let (ok, _, err) = geodyn(&["network", s(&bad)]);
    assert!(
        !ok && err.contains("velocity_um_per_ms = -1e300") && err.len() < 200,
        "{err}"
    );
}

#[test]
fn an_io_error_prints_its_cause_once() {
    // Before: "...(os error 2): No such file or directory (os error 2)".
    let (ok, _, err) = geodyn(&["simulate", "--images", "/no/i.idx", "--labels", "/no/l.idx"]);
    assert!(!ok);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn absurd_thread_counts_are_refused_before_starting() {
    // Before: tried to start 100,000 threads (memory exhaustion, EAGAIN).
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let (code, err) = geodyn_with(
        &[
            "encode",
            "weights",
            "--limit",
            "20",
            "--n-recurrent",
            "5",
            "--threads",
            "100000",
            "--out",
            s(&out),
        ],
        Stdio::null(),
        None,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("100000 threads") && err.contains("at most"),
        "{err}"
    );
}

#[test]
fn limit_help_describes_the_seeded_draw() {
    // Before: it mentioned a --stratified flag that does not exist.
    let (ok, stdout, _) = geodyn(&["encode", "--help"]);
    assert!(ok);
    assert!(
        !stdout.contains("--stratified") && stdout.contains("seeded draw"),
        "{stdout}"
    );
}

/// `bench large` on a small copy of the shipped large network (same
/// density): its JSON line has the fields, and the activations hash
/// is the same at 1, 2 and 3 threads (the network cut into as many parts).
#[test]
fn bench_large_gives_one_hash_at_every_thread_count() {
    let (ok, out, err) = geodyn(&[
        "bench",
        "large",
        "--n-nodes",
        "3000",
        "--threads",
        "1,2,3",
        "--json",
    ]);
    assert!(ok, "bench large failed: {err}");
    let last = out.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(last).expect("valid JSON");
    assert_eq!(v["nodes"], 3000);
    assert!(v["edges"].as_u64().unwrap() > 3000 * 20, "{last}");
    assert!(v["bytes_per_edge"].as_f64().unwrap() > 0.0);
    let t = &v["threads"];
    let hash = t["1"]["hash"].as_str().unwrap();
    for k in ["2", "3"] {
        assert_eq!(t[k]["hash"].as_str().unwrap(), hash, "{last}");
        assert_eq!(t[k]["arrivals"], t["1"]["arrivals"]);
    }
    assert!(t["1"]["arrivals"].as_u64().unwrap() > 0);
}

/// A large network that cannot fit is refused before anything is built,
/// with the figure it needed.
#[test]
fn bench_large_refuses_a_network_that_does_not_fit() {
    let (ok, _, err) = geodyn(&["bench", "large", "--n-nodes", "2000000000"]);
    assert!(!ok);
    assert!(
        err.contains("needs about") && err.contains("available"),
        "{err}"
    );
}

/// A config with a `[homeostasis]` section is refused, naming the file and the
/// section, by every command but experiment 2 (which alone uses it), and
/// before anything is written.
#[test]
fn homeostasis_is_refused_outside_experiment_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let cfg = "configs/stdp-homeostasis.toml";
    for args in [
        vec!["run", cfg, "--limit", "20", "--out", out.to_str().unwrap()],
        vec![
            "encode",
            cfg,
            "--limit",
            "20",
            "--out",
            out.to_str().unwrap(),
        ],
        vec![
            "reproduce",
            "weights",
            "--config",
            cfg,
            "--quick",
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        assert_clean_failure(&args, &["stdp-homeostasis.toml", "homeostasis"]);
    }
    assert!(!out.join("manifest.json").exists());
}

/// The velocity sweep is experiment 3's alone and runs alone.
#[test]
fn velocity_sweep_is_refused_where_it_does_not_apply() {
    assert_clean_failure(
        &["reproduce", "weights", "--velocity-sweep", "--sweep"],
        &["--sweep"],
    );
    assert_clean_failure(
        &[
            "reproduce",
            "weights",
            "--velocity-sweep",
            "--mean-latencies",
            "--quick",
        ],
        &["--velocity-sweep"],
    );
    assert_clean_failure(
        &["reproduce", "paths", "--velocity-sweep", "--quick"],
        &["--velocity-sweep", "experiment 3"],
    );
}
