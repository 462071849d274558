//! The export of one run (`geodyn simulate --export-run DIR`): the network
//! (as `geodyn network --export` writes it, in `network/`), the input trains
//! the run was driven by, every activation with its causal edge, per-node
//! counts, the final weights and the totals, so that another simulator can
//! rebuild the run and compare its own against it event by event.

use super::network::{export_network, ExportContext};
use super::ReportError;
use crate::network::Network;
use crate::record::{ExternalActivation, Recording};
use ndarray::Array1;
use std::path::Path;

/// The files of a run export: name, dtype, meaning (`run.json` repeats them).
const RUN_ARRAYS: [(&str, &str, &str); 9] = [
    (
        "input_node",
        "<u4",
        "node of each input (stimulus) activation, in time order",
    ),
    (
        "input_time_ms",
        "<f8",
        "its time (ms); an input within the node's refractory period is lost",
    ),
    (
        "activation_node",
        "<u4",
        "node of each activation, in time order (ties by node)",
    ),
    ("activation_time_ms", "<f8", "its time (ms)"),
    (
        "activation_causal_edge",
        "<i8",
        "the edge whose arrival pushed the node over threshold; -1 for a stimulus activation",
    ),
    ("node_activation_count", "<u4", "activations per node"),
    (
        "node_lost_arrival_count",
        "<u4",
        "arrivals lost to refractoriness per node",
    ),
    (
        "edge_weight_initial",
        "<f4",
        "weights at t = 0 (the network's)",
    ),
    (
        "edge_weight_final",
        "<f4",
        "weights at the end of the run (after STDP, if on)",
    ),
];

/// What a run export records besides the arrays.
#[derive(Clone, Debug)]
pub struct RunExportInfo {
    pub image: usize,
    pub label: u8,
    pub images_file: String,
    /// The seed of this row's stimulus (`row_seed(config seed, image)`).
    pub stimulus_seed: u64,
    pub duration_ms: f64,
}

fn write<T: ndarray_npy::WritableElement>(
    dir: &Path,
    name: &str,
    v: Vec<T>,
) -> Result<(), ReportError> {
    let path = dir.join(format!("{name}.npy"));
    ndarray_npy::write_npy(&path, &Array1::from(v)).map_err(|e| ReportError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })
}

/// Writes the run into `dir` (created if missing). `run.json` is written
/// last, so its presence marks a complete export.
pub fn export_run(
    dir: &Path,
    net: &Network,
    context: &ExportContext,
    stimulus: &[ExternalActivation],
    rec: &Recording,
    final_weights: &[f32],
    info: &RunExportInfo,
) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let run_json = dir.join("run.json");
    // A stale run.json would mark a half-written export as complete.
    let _ = std::fs::remove_file(&run_json);
    export_network(net, &dir.join("network"), Some(context))?;
    write(dir, "input_node", stimulus.iter().map(|s| s.node).collect())?;
    write(
        dir,
        "input_time_ms",
        stimulus.iter().map(|s| s.time_ms).collect(),
    )?;
    let acts = &rec.activations;
    write(
        dir,
        "activation_node",
        acts.iter().map(|a| a.node).collect(),
    )?;
    write(
        dir,
        "activation_time_ms",
        acts.iter().map(|a| a.time_ms).collect(),
    )?;
    write(
        dir,
        "activation_causal_edge",
        acts.iter()
            .map(|a| a.causal_edge.map_or(-1i64, i64::from))
            .collect(),
    )?;
    write(dir, "node_activation_count", rec.activation_counts.clone())?;
    write(dir, "node_lost_arrival_count", rec.lost_counts.clone())?;
    write(dir, "edge_weight_initial", net.edge_weight().to_vec())?;
    write(dir, "edge_weight_final", final_weights.to_vec())?;
    let arrays: serde_json::Map<String, serde_json::Value> = RUN_ARRAYS
        .iter()
        .map(|&(name, dtype, meaning)| {
            let len = match name {
                "input_node" | "input_time_ms" => stimulus.len(),
                "node_activation_count" | "node_lost_arrival_count" => net.n_nodes(),
                "edge_weight_initial" | "edge_weight_final" => net.n_edges(),
                _ => acts.len(),
            };
            (
                name.to_string(),
                serde_json::json!({"file": format!("{name}.npy"), "shape": [len], "dtype": dtype, "meaning": meaning}),
            )
        })
        .collect();
    let meta = serde_json::json!({
        "format": "geodyn run export",
        "format_version": super::network::EXPORT_FORMAT_VERSION,
        "geodyn_version": env!("CARGO_PKG_VERSION"),
        "network": "network/ (see network/meta.json and network/README.md)",
        "experiment": context.experiment,
        "seed": context.seed,
        "config_hash": context.config_hash,
        "image": info.image,
        "label": info.label,
        "images_file": info.images_file,
        "stimulus_seed": info.stimulus_seed,
        "duration_ms": info.duration_ms,
        "totals": rec.totals,
        "arrays": arrays,
    });
    let text = serde_json::to_string_pretty(&meta).map_err(|e| ReportError::Io {
        path: run_json.clone(),
        source: std::io::Error::other(e),
    })?;
    super::write_atomic(&run_json, text.as_bytes()).map_err(io(&run_json))
}
