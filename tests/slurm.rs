//! The Slurm job-array scripts (`scripts/slurm-*.sbatch`), run as plain bash
//! with the array variables set by hand, as Slurm would set them: every task
//! of the array, then the merge, give the bytes of an unsharded encode.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_geodyn");

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Runs `cmd`, panicking with its stderr if it fails.
fn check(mut cmd: Command, what: &str) {
    let out = cmd.output().expect(what);
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `.npy` files of an encode directory, by name, with their bytes.
fn npy_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn manifest(dir: &Path) -> serde_json::Value {
    common::read_json(&dir.join("manifest.json"))
}

#[test]
fn job_array_then_merge_equals_an_unsharded_encode() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("small.toml");
    std::fs::write(&config, common::small_text(10, 100.0)).unwrap();
    let out = tmp.path().join("merged");
    let extra = "--limit 12 --chunk 2";
    let n = 3;
    for k in 0..n {
        let mut cmd = Command::new("bash");
        cmd.arg(script("slurm-encode.sbatch"))
            .env("GEODYN", BIN)
            .env("CONFIG", &config)
            .env("OUT", &out)
            .env("GEODYN_ARGS", extra)
            .env("THREADS", "2")
            .env("SLURM_ARRAY_TASK_ID", k.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", n.to_string());
        check(cmd, &format!("array task {k}"));
    }
    let shards = PathBuf::from(format!("{}.shards", out.display()));
    for k in 0..n {
        let m = manifest(&shards.join(format!("shard-{k}-of-{n}")));
        assert_eq!(m["shard"], serde_json::json!([k, n]));
    }
    let mut cmd = Command::new("bash");
    cmd.arg(script("slurm-merge.sbatch"))
        .env("GEODYN", BIN)
        .env("OUT", &out)
        .env("NSHARDS", n.to_string());
    check(cmd, "merge job");

    let whole = tmp.path().join("whole");
    let mut cmd = Command::new(BIN);
    cmd.arg("encode")
        .arg(&config)
        .arg("--out")
        .arg(&whole)
        .args(extra.split(' '))
        .args(["--threads", "2"]);
    check(cmd, "unsharded encode");

    let merged = npy_files(&out);
    assert!(merged.len() >= 2, "labels and at least one view");
    assert_eq!(
        merged,
        npy_files(&whole),
        "merged shards differ from the unsharded encode"
    );
    let (a, b) = (manifest(&out), manifest(&whole));
    for field in [
        "config_hash",
        "n_rows",
        "n_rows_total",
        "views",
        "reference_subset",
        "shard",
    ] {
        assert_eq!(a[field], b[field], "manifest field {field}");
    }
    assert_eq!(a["n_rows"], 12);
}

#[test]
fn encode_script_refuses_to_run_outside_an_array() {
    let out = Command::new("bash")
        .arg(script("slurm-encode.sbatch"))
        .env("GEODYN", BIN)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SLURM_ARRAY_TASK_ID"), "{err}");
}
