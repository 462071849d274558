//! Reports on a built network: the per-edge-class geometry table (latency and
//! refraction-ratio quantiles), the JSON summary that goes into `report.json`,
//! and the `.npy` export for analysis in Python or for rebuilding the network
//! in another simulator. They live here rather than in `network` because the
//! simulation core knows nothing of files or report formats.

use super::ReportError;
use crate::network::{EdgeClass, Network};
use ndarray::{Array1, Array2};
use ndarray_npy::write_npy;
use std::path::Path;

/// Geometry of the edges of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeClassStats {
    pub class: EdgeClass,
    pub edges: usize,
    /// Latency (ms) at each of [`EdgeClassStats::QUANTILE_LEVELS`].
    pub latency_ms_quantiles: [f64; 5],
    /// Refraction ratio R_target / latency at each of the same levels.
    pub refraction_ratio_quantiles: [f64; 5],
    /// Share of the class's edges with refraction ratio <= 1 (Silva 2019:
    /// signalling is efficient near or below 1).
    pub share_refraction_ratio_at_most_1: f64,
    /// Share with a positive initial weight.
    pub excitatory_share: f64,
    /// Number of plastic edges.
    pub plastic: usize,
}

impl EdgeClassStats {
    /// The edge classes in the order the table lists them (the feed-forward
    /// and recurrent classes first: they are the ones every network has).
    pub const CLASS_ORDER: [EdgeClass; 4] = [
        EdgeClass::InputToRecurrent,
        EdgeClass::RecurrentToRecurrent,
        EdgeClass::InputToInput,
        EdgeClass::RecurrentToInput,
    ];
    /// The quantile levels of the table: min, p10, median, p90, max.
    pub const QUANTILE_LEVELS: [f64; 5] = [0.0, 0.1, 0.5, 0.9, 1.0];

    /// The geometry table: one row per edge class present, in
    /// [`EdgeClassStats::CLASS_ORDER`]. Both the `network` command and
    /// [`network_summary`] are built from it.
    pub fn table(net: &Network) -> Vec<EdgeClassStats> {
        let rr = net.refraction_ratio();
        let mut rows = Vec::new();
        for class in EdgeClassStats::CLASS_ORDER {
            let idx: Vec<usize> = (0..net.n_edges())
                .filter(|&e| net.edge_class[e] == class)
                .collect();
            if idx.is_empty() {
                continue;
            }
            let lat: Vec<f64> = idx.iter().map(|&e| net.edge_latency_ms[e]).collect();
            let r: Vec<f64> = idx.iter().map(|&e| rr[e]).collect();
            let below = r.iter().filter(|&&x| x <= 1.0).count() as f64 / r.len() as f64;
            let excitatory = idx.iter().filter(|&&e| net.edge_weight[e] > 0.0).count();
            rows.push(EdgeClassStats {
                class,
                edges: idx.len(),
                latency_ms_quantiles: at_levels(&lat),
                refraction_ratio_quantiles: at_levels(&r),
                share_refraction_ratio_at_most_1: below,
                excitatory_share: excitatory as f64 / idx.len() as f64,
                plastic: idx.iter().filter(|&&e| net.edge_plastic[e]).count(),
            });
        }
        rows
    }
}

/// The element of sorted `s` at quantile `q` (nearest rank; NaN if empty).
fn quantile_of_sorted(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        f64::NAN
    } else {
        s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The sample's quantiles at [`EdgeClassStats::QUANTILE_LEVELS`].
fn at_levels(v: &[f64]) -> [f64; 5] {
    let s = sorted(v);
    EdgeClassStats::QUANTILE_LEVELS.map(|q| quantile_of_sorted(&s, q))
}

/// Quantiles of a sample at levels `qs` (nearest rank on a sorted copy; NaN
/// for an empty sample).
pub fn quantiles(v: &[f64], qs: &[f64]) -> Vec<f64> {
    let s = sorted(v);
    qs.iter().map(|&q| quantile_of_sorted(&s, q)).collect()
}

/// A JSON summary of the network (the `network` field of `report.json`):
/// sizes and, per edge class, the rows of [`EdgeClassStats::table`].
pub fn network_summary(net: &Network) -> serde_json::Value {
    let mut by_class = serde_json::Map::new();
    for row in EdgeClassStats::table(net) {
        by_class.insert(
            format!("{:?}", row.class),
            serde_json::json!({
                "edges": row.edges,
                "latency_ms_quantiles_0_10_50_90_100": row.latency_ms_quantiles,
                "refraction_ratio_quantiles_0_10_50_90_100": row.refraction_ratio_quantiles,
                "share_refraction_ratio_at_most_1": row.share_refraction_ratio_at_most_1,
                "excitatory_share": row.excitatory_share,
                "plastic": row.plastic,
            }),
        );
    }
    serde_json::json!({
        "nodes": net.n_nodes(),
        "input_nodes": net.n_input(),
        "recurrent_nodes": net.n_recurrent(),
        "edges": net.n_edges(),
        "by_class": by_class,
        "network_bytes": net.memory_bytes(),
    })
}

/// The arrays of an export: file stem, shape, dtype (NumPy's), unit, meaning.
/// The README and `meta.json` are both rendered from this one table.
const ARRAYS: [(&str, &str, &str, &str, &str); 13] = [
    ("node_position_um", "n x 3", "<f8", "um", "node positions"),
    (
        "node_population",
        "n",
        "|u1",
        "",
        "0 = input, 1 = recurrent",
    ),
    (
        "node_refractory_period_ms",
        "n",
        "<f8",
        "ms",
        "refractory period R: an arrival within R after the node's activation is lost",
    ),
    (
        "node_threshold",
        "n",
        "<f8",
        "",
        "activation threshold of the summed, decaying input",
    ),
    (
        "node_summation_tau_ms",
        "n",
        "<f8",
        "ms",
        "decay time constant of the summation",
    ),
    ("edge_source", "m", "<u4", "", "source node"),
    ("edge_target", "m", "<u4", "", "target node"),
    (
        "edge_length_um",
        "m",
        "<f8",
        "um",
        "path length, >= the straight distance",
    ),
    (
        "edge_velocity_um_per_ms",
        "m",
        "<f8",
        "um/ms",
        "conduction velocity (1 m/s = 1000 um/ms)",
    ),
    (
        "edge_latency_ms",
        "m",
        "<f8",
        "ms",
        "latency = length / velocity, exact (no time grid)",
    ),
    (
        "edge_weight",
        "m",
        "<f4",
        "",
        "initial weight, in units of the threshold's input (negative = inhibitory); float32",
    ),
    (
        "edge_plastic",
        "m",
        "|u1",
        "",
        "1 if STDP may change the edge",
    ),
    (
        "edge_class",
        "m",
        "|u1",
        "",
        "0 input->input, 1 input->recurrent, 2 recurrent->input, 3 recurrent->recurrent",
    ),
];

/// The version of the export layout (`meta.json` `format_version`).
pub const EXPORT_FORMAT_VERSION: u32 = 1;

fn readme_text() -> String {
    let mut r = String::from(
        "# geodyn network export\n\n\
One `.npy` file per array (NumPy: `np.load`), and `meta.json`: the counts, the\n\
units, the edge order, every dtype, and (when exported from a config) the STDP\n\
rule and its parameters, the stimulus rule, the run length, the seed and the\n\
config hash, so another simulator can rebuild the network and its runs.\n\
Nodes are indexed 0..n; edges 0..m in CSR order by (source, target).\n\n\
| file | shape | dtype | unit | meaning |\n|---|---|---|---|---|\n",
    );
    for (name, shape, dtype, unit, meaning) in ARRAYS {
        // NumPy's dtype strings hold `|`, which would break the table.
        let dtype = match dtype {
            "<f8" => "float64",
            "<f4" => "float32",
            "<u4" => "uint32",
            _ => "uint8",
        };
        r.push_str(&format!(
            "| {name}.npy | {shape} | {dtype} | {unit} | {meaning} |\n"
        ));
    }
    r.push_str(
        "\nRebuild in Python, e.g. with scipy: `scipy.sparse.csr_matrix((w, (src, tgt)), shape=(n, n))`.\n\
The refraction ratio of an edge is `node_refractory_period_ms[edge_target] / edge_latency_ms`.\n",
    );
    r
}

/// What an export knows of the config its network came from.
#[derive(Clone, Debug)]
pub struct ExportContext {
    pub experiment: String,
    pub seed: u64,
    pub config_hash: String,
    /// The checked config (all sections: network, stimulus, simulation,
    /// stdp, ...), as JSON.
    pub config: serde_json::Value,
}

/// `meta.json` of an export.
fn meta(net: &Network, context: Option<&ExportContext>) -> serde_json::Value {
    let arrays: serde_json::Map<String, serde_json::Value> = ARRAYS
        .iter()
        .map(|&(name, shape, dtype, unit, meaning)| {
            let dims: Vec<usize> = match shape {
                "n x 3" => vec![net.n_nodes(), 3],
                "n" => vec![net.n_nodes()],
                _ => vec![net.n_edges()],
            };
            (
                name.to_string(),
                serde_json::json!({
                    "file": format!("{name}.npy"),
                    "shape": dims,
                    "dtype": dtype,
                    "unit": unit,
                    "meaning": meaning,
                }),
            )
        })
        .collect();
    let section = |key: &str| {
        context
            .and_then(|c| c.config.get(key).cloned())
            .unwrap_or(serde_json::Value::Null)
    };
    serde_json::json!({
        "format": "geodyn network export",
        "format_version": EXPORT_FORMAT_VERSION,
        "geodyn_version": env!("CARGO_PKG_VERSION"),
        "units": {"time": "ms", "length": "um", "velocity": "um/ms", "weight": "dimensionless (threshold units)"},
        "n_nodes": net.n_nodes(),
        "n_input": net.n_input(),
        "n_recurrent": net.n_recurrent(),
        "n_edges": net.n_edges(),
        "n_plastic_edges": net.plastic_edges().len(),
        "node_order": "node ids 0..n_nodes; node_population says which are input nodes",
        "edge_order": "CSR by (source, target): edge i's source is edge_source[i], sources non-decreasing",
        "arrays": arrays,
        "model": {
            "activation": "a node integrates arriving weights, each decaying with its summation_tau_ms; it activates when the sum reaches its threshold, then emits on every out-edge, each arriving after the edge's latency; arrivals within refractory_period_ms after an activation are lost",
            "stdp": "pair-based, timing at the target: an arrival dt before an activation adds a_plus * exp(-dt / tau_plus_ms); an arrival dt after one adds -a_minus * exp(-dt / tau_minus_ms); weights clipped to [w_min, w_max] (initial weights of plastic edges too, when the network is built); only edges with edge_plastic = 1",
            "order": "events in time order; ties by (time, edge, emission)",
            "stimulus": "input node i is pixel i (row-major); intensity = pixel / 255; a pixel with intensity > intensity_threshold drives its node at r = max_rate_hz * intensity, period P = max(1000 / r, R of the input node) ms; regular trains fire at P/2, P/2 + P, ... < duration_ms; Poisson trains have dead time R and a seed per image (row_seed(config seed, row))",
        },
        "experiment": context.map(|c| c.experiment.clone()),
        "seed": context.map(|c| c.seed),
        "config_hash": context.map(|c| c.config_hash.clone()),
        "stdp": section("stdp"),
        "stimulus": section("stimulus"),
        "simulation": section("simulation"),
        "config": context.map_or(serde_json::Value::Null, |c| c.config.clone()),
    })
}

/// Writes one array as `dir/name.npy`.
fn write_array<T: ndarray_npy::WriteNpyExt>(
    dir: &Path,
    name: &str,
    array: &T,
) -> Result<(), ReportError> {
    let path = dir.join(format!("{name}.npy"));
    write_npy(&path, array).map_err(|e| ReportError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })
}

/// Writes the network's arrays and a README of the layout into `dir`
/// (created if missing), then `meta.json`, then the README, last, so its
/// presence marks a complete export.
pub fn export_network_npy(net: &Network, dir: &Path) -> Result<(), ReportError> {
    export_network(net, dir, None)
}

/// [`export_network_npy`], with `meta.json` also holding what the config
/// says of the runs (STDP, stimulus, duration, seed, hash).
pub fn export_network(
    net: &Network,
    dir: &Path,
    context: Option<&ExportContext>,
) -> Result<(), ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let readme = dir.join("README.md");
    // A stale README would mark a half-written export as complete.
    let _ = std::fs::remove_file(&readme);
    let _ = std::fs::remove_file(dir.join("meta.json"));
    let n = net.n_nodes();
    let pos = Array2::from_shape_fn((n, 3), |(i, k)| net.position_um[i][k]);
    write_array(dir, "node_position_um", &pos)?;
    let f64s: [(&str, &Vec<f64>); 6] = [
        ("node_refractory_period_ms", &net.refractory_period_ms),
        ("node_threshold", &net.threshold),
        ("node_summation_tau_ms", &net.summation_tau_ms),
        ("edge_length_um", &net.edge_length_um),
        ("edge_velocity_um_per_ms", &net.edge_velocity_um_per_ms),
        ("edge_latency_ms", &net.edge_latency_ms),
    ];
    for (name, v) in f64s {
        write_array(dir, name, &Array1::from(v.clone()))?;
    }
    for (name, v) in [
        ("edge_source", &net.edge_source),
        ("edge_target", &net.edge_target),
    ] {
        write_array(dir, name, &Array1::from(v.clone()))?;
    }
    write_array(dir, "edge_weight", &Array1::from(net.edge_weight.clone()))?;
    let u8s: [(&str, Vec<u8>); 3] = [
        (
            "node_population",
            net.population.iter().map(|&p| p as u8).collect(),
        ),
        (
            "edge_plastic",
            net.edge_plastic.iter().map(|&p| p as u8).collect(),
        ),
        (
            "edge_class",
            net.edge_class.iter().map(|&c| c as u8).collect(),
        ),
    ];
    for (name, v) in u8s {
        write_array(dir, name, &Array1::from(v))?;
    }
    let meta_path = dir.join("meta.json");
    let text = serde_json::to_string_pretty(&meta(net, context)).map_err(|e| ReportError::Io {
        path: meta_path.clone(),
        source: std::io::Error::other(e),
    })?;
    super::write_atomic(&meta_path, text.as_bytes()).map_err(io(&meta_path))?;
    super::write_atomic(&readme, readme_text().as_bytes()).map_err(io(&readme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{EdgeSpec, NodeParams, NodeSpec, Population};

    fn tiny() -> Network {
        let node = |population, r| NodeSpec {
            position_um: [0.0; 3],
            population,
            params: NodeParams {
                refractory_period_ms: r,
                threshold: 1.0,
                summation_tau_ms: 10.0,
            },
        };
        let edge = |source, target, length_um, weight| EdgeSpec {
            source,
            target,
            length_um,
            velocity_um_per_ms: 10.0,
            weight,
            plastic: false,
        };
        let nodes = [
            node(Population::Input, 0.0),
            node(Population::Recurrent, 2.0),
            node(Population::Recurrent, 1.0),
        ];
        let edges = [
            edge(0, 1, 10.0, 0.5),
            edge(0, 2, 40.0, -0.5),
            edge(1, 2, 20.0, 1.0),
            edge(2, 1, 5.0, 1.0),
        ];
        let mut net = Network::from_edges(&nodes, &edges).expect("valid");
        net.set_plastic_classes(&[EdgeClass::RecurrentToRecurrent]);
        net
    }

    #[test]
    fn table_rows_follow_the_class_order_and_skip_empty_classes() {
        let rows = EdgeClassStats::table(&tiny());
        let classes: Vec<EdgeClass> = rows.iter().map(|r| r.class).collect();
        assert_eq!(
            classes,
            [EdgeClass::InputToRecurrent, EdgeClass::RecurrentToRecurrent]
        );
        // Input -> recurrent: latencies 1 and 4 ms into R = 2 and 1.
        let r = &rows[0];
        assert_eq!(r.edges, 2);
        assert_eq!(r.latency_ms_quantiles, [1.0, 1.0, 4.0, 4.0, 4.0]);
        assert_eq!(r.refraction_ratio_quantiles, [0.25, 0.25, 2.0, 2.0, 2.0]);
        assert_eq!(r.share_refraction_ratio_at_most_1, 0.5);
        assert_eq!((r.excitatory_share, r.plastic), (0.5, 0));
        assert_eq!(rows[1].plastic, 2);
        assert!(quantiles(&[], &[0.5])[0].is_nan());
    }

    /// The summary is the `network` field of report.json: its text is pinned.
    #[test]
    fn summary_json_is_stable() {
        let got = network_summary(&tiny()).to_string();
        let want = concat!(
            r#"{"by_class":{"InputToRecurrent":{"edges":2,"excitatory_share":0.5,"#,
            r#""latency_ms_quantiles_0_10_50_90_100":[1.0,1.0,4.0,4.0,4.0],"plastic":0,"#,
            r#""refraction_ratio_quantiles_0_10_50_90_100":[0.25,0.25,2.0,2.0,2.0],"#,
            r#""share_refraction_ratio_at_most_1":0.5},"RecurrentToRecurrent":{"edges":2,"#,
            r#""excitatory_share":1.0,"latency_ms_quantiles_0_10_50_90_100":[0.5,0.5,2.0,2.0,2.0],"#,
            r#""plastic":2,"refraction_ratio_quantiles_0_10_50_90_100":[0.5,0.5,4.0,4.0,4.0],"#,
            r#""share_refraction_ratio_at_most_1":0.5}},"edges":4,"input_nodes":1,"#,
            r#""network_bytes":"#
        );
        assert!(got.starts_with(want), "{got}");
        assert!(got.ends_with(r#","nodes":3,"recurrent_nodes":2}"#), "{got}");
    }
}
