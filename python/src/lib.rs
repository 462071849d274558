//! `geodyn._geodyn`: the Python bindings of the geodyn library. A thin layer:
//! every call goes through the same library functions as the CLI (config
//! loading and checks, `Encoder`, `with_threads`, `Evaluator`), so a row
//! encoded here has the bytes `geodyn encode` writes for the same row. The
//! Python package `geodyn` (python/geodyn/__init__.py) wraps these in the
//! documented API; this module checks every input itself as well, so a bad
//! call from Python raises an exception and never aborts the interpreter.

use geodyn::config::{self, ExperimentConfig, NetworkPlan};
use geodyn::dataset::ImageSet;
use geodyn::embed::Normalize;
use geodyn::pipeline::{
    self, DataSpec, Encoder, EvaluateOptions, Evaluator, MemoryViews, PipelineError, Protocol,
    Quiet, RowResult, Scratch, ViewInfo,
};
use geodyn::record::{ExternalActivation, RecordSpec};
use numpy::{
    IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Rows per worker thread encoded between two looks at Python's signal
/// handlers, so Ctrl-C stops a long `encode` within seconds; enough rows
/// per thread that the chunk's last, slowest rows leave few threads idle.
/// (Results do not depend on it: each row's seed depends on the row only.)
const ROWS_PER_THREAD_PER_CHUNK: usize = 8;

/// The message of `e` and its causes, each once: the rule of the CLI's
/// `error:` line (`cli::output::error_chain`), so Python sees the same text.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !s.is_empty() && !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// A library error as a Python exception: `OSError` for files that cannot
/// be read or written, `ValueError` for everything else (bad configs, data,
/// shapes, splits), with the CLI's text.
fn py_err(e: PipelineError) -> PyErr {
    match &e {
        PipelineError::Io { .. } => PyOSError::new_err(error_chain(&e)),
        _ => PyValueError::new_err(error_chain(&e)),
    }
}

fn value_err(e: impl Into<PipelineError>) -> PyErr {
    py_err(e.into())
}

/// A checked experiment config (see `geodyn.Config`).
#[pyclass(frozen, module = "geodyn._geodyn", name = "Config")]
struct Config {
    cfg: ExperimentConfig,
    /// What messages call the config (its path, or `configs/weights.toml (built-in)`).
    source: PathBuf,
}

impl Config {
    /// Applies the overrides the CLI offers to the raw config, then checks
    /// it, as `cli::commands::load_config` does.
    fn checked(
        mut raw: config::RawConfig,
        source: PathBuf,
        n_recurrent: Option<usize>,
    ) -> PyResult<Config> {
        if let Some(n) = n_recurrent {
            raw.network.n_recurrent = n;
        }
        let cfg = raw.check(&source).map_err(value_err)?;
        Ok(Config { cfg, source })
    }
}

#[pymethods]
impl Config {
    /// A config file path or a built-in name (`weights`, `paths`, `stdp`);
    /// a file wins, as on the command line.
    #[staticmethod]
    #[pyo3(signature = (spec, n_recurrent=None))]
    fn from_spec(spec: &str, n_recurrent: Option<usize>) -> PyResult<Config> {
        let (raw, path) = config::read_raw(spec).map_err(value_err)?;
        Config::checked(raw, path, n_recurrent)
    }

    /// TOML text; `name` stands for the file in messages.
    #[staticmethod]
    #[pyo3(signature = (text, name, n_recurrent=None))]
    fn from_toml(text: &str, name: &str, n_recurrent: Option<usize>) -> PyResult<Config> {
        let path = PathBuf::from(name);
        let raw = config::parse(text, &path).map_err(value_err)?;
        Config::checked(raw, path, n_recurrent)
    }

    /// JSON text of the config's tables (what `json.dumps` makes of a
    /// dict). It goes through TOML text and the TOML parser, so a bad key or
    /// value is reported as in a file: with the key and its line.
    #[staticmethod]
    #[pyo3(signature = (text, name, n_recurrent=None))]
    fn from_json(text: &str, name: &str, n_recurrent: Option<usize>) -> PyResult<Config> {
        let path = PathBuf::from(name);
        let bad = |message: String| {
            value_err(config::ConfigError::Parse {
                path: path.clone(),
                message,
            })
        };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let table = toml::Value::try_from(&json)
            .ok()
            .filter(toml::Value::is_table)
            .ok_or_else(|| {
                bad("not a table of TOML values (a dict of str keys; no None)".to_string())
            })?;
        let toml_text = toml::to_string(&table).map_err(|e| bad(e.to_string()))?;
        let raw = config::parse(&toml_text, &path).map_err(value_err)?;
        Config::checked(raw, path, n_recurrent)
    }

    /// The checked config as TOML (every default filled in); loads back to
    /// the same config and hash.
    fn to_toml(&self) -> PyResult<String> {
        toml::to_string(self.cfg.raw())
            .map_err(|e| PyValueError::new_err(format!("the config as TOML: {e}")))
    }

    #[getter]
    fn experiment(&self) -> &str {
        self.cfg.experiment()
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.cfg.seed()
    }
    /// SHA-256 of the canonical TOML (the `config_hash` of manifests and reports).
    #[getter]
    fn hash(&self) -> &str {
        self.cfg.hash()
    }
    #[getter]
    fn n_recurrent(&self) -> usize {
        self.cfg.n_recurrent()
    }
    #[getter]
    fn source(&self) -> String {
        self.source.display().to_string()
    }
}

/// The pixels of a numpy array of uint8, in logical (C) order whatever its
/// strides, and its shape. Always a copy: the rows must outlive the GIL's
/// release, and the caller may change the array meanwhile.
fn u8_array(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<usize>, Vec<u8>)> {
    let arr = obj.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected a numpy array of uint8, got {}",
            obj.get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string())
        ))
    })?;
    let dtype = arr.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<u8>(obj.py())) {
        return Err(PyTypeError::new_err(format!(
            "{what}: dtype {dtype}, expected uint8 (pixel values 0..255)"
        )));
    }
    let typed = arr
        .cast::<PyArrayDyn<u8>>()
        .map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))?;
    let ro = typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    let view = ro.as_array();
    Ok((view.shape().to_vec(), view.iter().copied().collect()))
}

/// A shape as Python prints it.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [a] => format!("({a},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The network's input grid, when the config lays the inputs out as one.
fn input_grid(cfg: &ExperimentConfig) -> Option<(usize, usize)> {
    match cfg.network() {
        NetworkPlan::TwoPopulation(spec) => Some((spec.input_rows, spec.input_cols)),
        NetworkPlan::EdgeList { .. } => None,
    }
}

/// Images of shape (n, d) or (n, rows, cols) (or, with `single`, one image of
/// shape (d,) or (rows, cols)) as an image set, for the encoder's checks
/// against the network's inputs. A flat image takes the network's grid when
/// it has the grid's pixel count.
fn image_set(
    cfg: &ExperimentConfig,
    shape: &[usize],
    pixels: Vec<u8>,
    what: &str,
    single: bool,
) -> PyResult<ImageSet> {
    let dims: &[usize] = if single {
        shape
    } else {
        shape.get(1..).unwrap_or(&[])
    };
    let (rows, cols) = match dims {
        [d] => match input_grid(cfg) {
            Some((r, c)) if r.checked_mul(c) == Some(*d) => (r, c),
            _ => (1, *d),
        },
        [r, c] => (*r, *c),
        _ => {
            let want = if single {
                "(pixels,) or (rows, cols)"
            } else {
                "(n, pixels) or (n, rows, cols)"
            };
            return Err(PyValueError::new_err(format!(
                "{what}: shape {}, expected {want}",
                shape_text(shape)
            )));
        }
    };
    let n = if single { 1 } else { shape[0] };
    Ok(ImageSet {
        rows,
        cols,
        labels: vec![0; n],
        pixels,
        images_path: PathBuf::from(format!("{what} (array of shape {})", shape_text(shape))),
        labels_path: PathBuf::from("(none)"),
    })
}

/// What `simulate` can record, by the names of its `record` argument.
const RECORD_NAMES: [&str; 4] = ["activations", "counts", "activity", "snapshots"];

/// A network built from a config (see `geodyn.Network`).
#[pyclass(frozen, module = "geodyn._geodyn", name = "Network")]
struct Network {
    cfg: ExperimentConfig,
    net: geodyn::network::Network,
}

impl Network {
    fn encoder(&self) -> PyResult<Encoder<'_>> {
        Encoder::new(&self.net, &self.cfg).map_err(py_err)
    }

    /// The record spec of `simulate`: the parts named in `record`, with the
    /// activity bins and snapshot times of the config's embedding unless given.
    fn record_spec(
        &self,
        encoder: &Encoder,
        record: &[String],
        activity_bin_ms: Option<f64>,
        snapshot_ms: Option<Vec<f64>>,
    ) -> PyResult<RecordSpec> {
        if let Some(bad) = record.iter().find(|r| !RECORD_NAMES.contains(&r.as_str())) {
            return Err(PyValueError::new_err(format!(
                "record: unknown part {bad:?} (known: {})",
                RECORD_NAMES.join(", ")
            )));
        }
        let has = |name: &str| record.iter().any(|r| r == name);
        let base = encoder.record_spec();
        let mut spec = RecordSpec {
            activations: has("activations"),
            node_counts: has("counts"),
            ..Default::default()
        };
        if has("activity") {
            spec.activity_bin_ms = activity_bin_ms.or(base.activity_bin_ms);
            if spec.activity_bin_ms.is_none() {
                return Err(PyValueError::new_err(
                    "record activity: the config's embedding bins no activity; give activity_bin_ms",
                ));
            }
        }
        if has("snapshots") {
            spec.weight_snapshots_ms =
                snapshot_ms.unwrap_or_else(|| base.weight_snapshots_ms.clone());
            if spec.weight_snapshots_ms.iter().any(|t| !t.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "snapshot_ms = {:?}: times must be finite",
                    spec.weight_snapshots_ms
                )));
            }
            spec.snapshot_edges = if base.snapshot_edges.is_empty() {
                self.net.plastic_edges()
            } else {
                base.snapshot_edges.clone()
            };
            if spec.weight_snapshots_ms.is_empty() || spec.snapshot_edges.is_empty() {
                return Err(PyValueError::new_err(
                    "record snapshots: no snapshot times or no plastic edges to snapshot \
                     (give snapshot_ms, on a network with plastic edges)",
                ));
            }
        }
        Ok(spec)
    }
}

#[pymethods]
impl Network {
    #[new]
    fn new(py: Python<'_>, config: &Config) -> PyResult<Network> {
        let cfg = config.cfg.clone();
        let net = py.detach(|| cfg.build_network()).map_err(value_err)?;
        Ok(Network { cfg, net })
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.net.n_nodes()
    }
    #[getter]
    fn n_input(&self) -> usize {
        self.net.n_input()
    }
    #[getter]
    fn n_recurrent(&self) -> usize {
        self.net.n_recurrent()
    }
    #[getter]
    fn n_edges(&self) -> usize {
        self.net.n_edges()
    }
    #[getter]
    fn n_plastic(&self) -> usize {
        self.net.plastic_edges().len()
    }
    #[getter]
    fn config_toml(&self) -> PyResult<String> {
        toml::to_string(self.cfg.raw())
            .map_err(|e| PyValueError::new_err(format!("the config as TOML: {e}")))
    }

    /// (name, dim, time_ms) of each view `encode` returns, in order.
    fn views(&self) -> PyResult<Vec<(String, usize, Option<f64>)>> {
        let enc = self.encoder()?;
        Ok(enc
            .views()
            .iter()
            .map(|v| (v.name.clone(), v.dim, v.time_ms))
            .collect())
    }

    /// The JSON of the network summary of report.json (sizes, latency and
    /// refraction-ratio quantiles per edge class).
    fn summary_json(&self) -> String {
        geodyn::report::network_summary(&self.net).to_string()
    }

    /// The network's arrays, named as in `geodyn network --export`.
    fn export<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n = &self.net;
        let d = PyDict::new(py);
        let pos: Vec<f64> = n.position_um().iter().flatten().copied().collect();
        let pos = numpy::PyArray1::from_vec(py, pos).reshape([n.n_nodes(), 3])?;
        d.set_item("node_position_um", pos)?;
        let pop: Vec<u8> = n.population().iter().map(|&p| p as u8).collect();
        d.set_item("node_population", pop.into_pyarray(py))?;
        for (name, v) in [
            ("node_refractory_period_ms", n.refractory_period_ms()),
            ("node_threshold", n.threshold()),
            ("node_summation_tau_ms", n.summation_tau_ms()),
            ("edge_length_um", n.edge_length_um()),
            ("edge_velocity_um_per_ms", n.edge_velocity_um_per_ms()),
            ("edge_latency_ms", n.edge_latency_ms()),
        ] {
            d.set_item(name, v.to_vec().into_pyarray(py))?;
        }
        d.set_item("edge_source", n.edge_source().to_vec().into_pyarray(py))?;
        d.set_item("edge_target", n.edge_target().to_vec().into_pyarray(py))?;
        d.set_item("edge_weight", n.edge_weight().to_vec().into_pyarray(py))?;
        d.set_item("edge_plastic", n.edge_plastic().to_vec().into_pyarray(py))?;
        let class: Vec<u8> = n.edge_class().iter().map(|&c| c as u8).collect();
        d.set_item("edge_class", class.into_pyarray(py))?;
        Ok(d)
    }

    /// One run: of `image` as row `row` (the stimulus `encode` draws for that
    /// row), or of the external activations (`nodes`, `times_ms`).
    #[pyo3(signature = (image=None, row=0, nodes=None, times_ms=None, record=Vec::new(), activity_bin_ms=None, snapshot_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn simulate<'py>(
        &self,
        py: Python<'py>,
        image: Option<&Bound<'py, PyAny>>,
        row: usize,
        nodes: Option<PyReadonlyArray1<'py, i64>>,
        times_ms: Option<PyReadonlyArray1<'py, f64>>,
        record: Vec<String>,
        activity_bin_ms: Option<f64>,
        snapshot_ms: Option<Vec<f64>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let encoder = self.encoder()?;
        let spec = self.record_spec(&encoder, &record, activity_bin_ms, snapshot_ms)?;
        let stimulus: Vec<ExternalActivation> = match (image, nodes, times_ms) {
            (Some(img), None, None) => {
                let (shape, pixels) = u8_array(img, "image")?;
                let set = image_set(&self.cfg, &shape, pixels, "image", true)?;
                encoder.check_images(&set, "images").map_err(py_err)?;
                encoder.stimulus(set.image(0), row)
            }
            (None, Some(nodes), Some(times)) => {
                let (nodes, times) = (nodes.as_array(), times.as_array());
                if nodes.len() != times.len() {
                    return Err(PyValueError::new_err(format!(
                        "nodes and times_ms: {} nodes but {} times",
                        nodes.len(),
                        times.len()
                    )));
                }
                let n_nodes = self.net.n_nodes();
                let mut stim = Vec::with_capacity(nodes.len());
                for (i, (&node, &t)) in nodes.iter().zip(times.iter()).enumerate() {
                    let node = u32::try_from(node)
                        .ok()
                        .filter(|&v| (v as usize) < n_nodes)
                        .ok_or_else(|| {
                            PyValueError::new_err(format!(
                                "nodes[{i}] = {node}: not a node of this network (0..{n_nodes})"
                            ))
                        })?;
                    stim.push(ExternalActivation { node, time_ms: t });
                }
                stim
            }
            _ => {
                return Err(PyValueError::new_err(
                    "simulate: give either an image or both nodes and times_ms",
                ))
            }
        };
        let (rec, weights) = py
            .detach(|| -> Result<_, PipelineError> {
                let mut scratch = Scratch::default();
                let mut weights = encoder.initial_weights().to_vec();
                let rec =
                    encoder
                        .simulator()
                        .run(scratch.workspace(), &mut weights, &stimulus, &spec)?;
                Ok((rec, weights))
            })
            .map_err(py_err)?;
        let d = PyDict::new(py);
        let stim_nodes: Vec<u32> = stimulus.iter().map(|s| s.node).collect();
        let stim_times: Vec<f64> = stimulus.iter().map(|s| s.time_ms).collect();
        d.set_item("stimulus_node", stim_nodes.into_pyarray(py))?;
        d.set_item("stimulus_time_ms", stim_times.into_pyarray(py))?;
        let act = &rec.activations;
        let node: Vec<u32> = act.iter().map(|a| a.node).collect();
        let time: Vec<f64> = act.iter().map(|a| a.time_ms).collect();
        // -1: imposed by the stimulus (no causal edge); edge ids fit in i64.
        let causal: Vec<i64> = act
            .iter()
            .map(|a| a.causal_edge.map_or(-1, i64::from))
            .collect();
        d.set_item("node", node.into_pyarray(py))?;
        d.set_item("time_ms", time.into_pyarray(py))?;
        d.set_item("causal_edge", causal.into_pyarray(py))?;
        d.set_item("counts", rec.activation_counts.clone().into_pyarray(py))?;
        d.set_item("lost", rec.lost_counts.clone().into_pyarray(py))?;
        let bins = rec.activity_bins;
        let rows = rec.activity.len().checked_div(bins).unwrap_or(0);
        let activity = numpy::PyArray1::from_vec(py, rec.activity.clone()).reshape([rows, bins])?;
        d.set_item("activity", activity)?;
        d.set_item("activity_bin_ms", spec.activity_bin_ms)?;
        let snap_times: Vec<f64> = rec.snapshots.iter().map(|s| s.time_ms).collect();
        let width = spec.snapshot_edges.len();
        let snap_w: Vec<f32> = rec
            .snapshots
            .iter()
            .flat_map(|s| s.weights.iter().copied())
            .collect();
        let snap_w = numpy::PyArray1::from_vec(py, snap_w).reshape([rec.snapshots.len(), width])?;
        d.set_item("snapshot_time_ms", snap_times.into_pyarray(py))?;
        d.set_item("snapshot_weights", snap_w)?;
        d.set_item(
            "snapshot_edges",
            spec.snapshot_edges.clone().into_pyarray(py),
        )?;
        d.set_item("final_weights", weights.into_pyarray(py))?;
        let totals = serde_json::to_string(&rec.totals)
            .map_err(|e| PyValueError::new_err(format!("run totals: {e}")))?;
        d.set_item("totals_json", totals)?;
        Ok(d)
    }

    /// Encodes images as rows `first_row..first_row + n`: a dict view name ->
    /// float32 (n, dim), row i being what `geodyn encode` writes for row
    /// `first_row + i`. The GIL is released while the rows are encoded.
    #[pyo3(signature = (images, views=None, threads=None, first_row=0))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        views: Option<Vec<String>>,
        threads: Option<usize>,
        first_row: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let encoder = self.encoder()?;
        let (shape, pixels) = u8_array(images, "images")?;
        let set = image_set(&self.cfg, &shape, pixels, "images", false)?;
        encoder.check_images(&set, "images").map_err(py_err)?;
        let all = encoder.views();
        let chosen: Vec<usize> = match &views {
            None => (0..all.len()).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    all.iter().position(|v| &v.name == name).ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "views: no view {name:?} in this config (its views: {})",
                            all.iter()
                                .map(|v| v.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
                })
                .collect::<PyResult<_>>()?,
        };
        let n = set.len();
        if first_row.checked_add(n).is_none() {
            return Err(PyValueError::new_err(format!(
                "first_row = {first_row}: rows past the largest row number"
            )));
        }
        let image = |row: usize| set.image(row - first_row);
        let workers = match threads {
            Some(t) if t > 0 => t,
            // rayon's default pool: one thread per core.
            _ => std::thread::available_parallelism().map_or(1, |c| c.get()),
        };
        let chunk = ROWS_PER_THREAD_PER_CHUNK.saturating_mul(workers).max(16);
        let mut rows: Vec<RowResult> = Vec::with_capacity(n);
        for a in (0..n).step_by(chunk) {
            let b = (a + chunk).min(n);
            let block = py
                .detach(|| {
                    pipeline::with_threads(threads, || {
                        encoder.encode_rows(first_row + a..first_row + b, &image, &Quiet)
                    })
                })
                .map_err(py_err)?;
            rows.extend(block);
            // Here, on the calling (main) thread: Python runs signal
            // handlers only there, so a worker thread could not see Ctrl-C.
            py.check_signals()?;
        }
        let d = PyDict::new(py);
        for vi in chosen {
            let v = &all[vi];
            let m = pipeline::stack_view(&rows, vi, v.dim).map_err(py_err)?;
            d.set_item(&v.name, m.into_pyarray(py))?;
        }
        Ok(d)
    }
}

/// A numpy array of float as float32 (n, d), copied in logical order.
fn f32_matrix(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<ndarray::Array2<f32>> {
    let arr = obj
        .cast::<PyUntypedArray>()
        .map_err(|_| PyTypeError::new_err(format!("{what}: expected a numpy array of float32")))?;
    let typed = arr.cast::<numpy::PyArray2<f32>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: dtype {} and {} dimensions, expected float32 (n, dim)",
            arr.dtype(),
            arr.ndim()
        ))
    })?;
    let ro = typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    Ok(ro.as_array().to_owned())
}

/// The evaluation of `geodyn evaluate`, on matrices in memory: the same
/// splits, readouts, preprocessing and baselines. Returns report.json's text.
#[pyfunction]
#[pyo3(signature = (names, matrices, times, labels, images, config, n_reference=None, l2=false, knn_only=false, trajectory=false, n_recurrent=None, threads=None, report_dir=None))]
#[allow(clippy::too_many_arguments)]
fn evaluate(
    py: Python<'_>,
    names: Vec<String>,
    matrices: Vec<Bound<'_, PyAny>>,
    times: Vec<Option<f64>>,
    labels: &Bound<'_, PyAny>,
    images: Option<&Bound<'_, PyAny>>,
    config: &Config,
    n_reference: Option<usize>,
    l2: bool,
    knn_only: bool,
    trajectory: bool,
    n_recurrent: Option<usize>,
    threads: Option<usize>,
    report_dir: Option<PathBuf>,
) -> PyResult<String> {
    if names.len() != matrices.len() || names.len() != times.len() {
        return Err(PyValueError::new_err(format!(
            "{} names, {} matrices and {} times",
            names.len(),
            matrices.len(),
            times.len()
        )));
    }
    // The CLI's options, applied to the raw config as `evaluate` does, so
    // the changed config passes the same checks.
    let mut raw = config.cfg.raw().clone();
    if l2 {
        raw.embedding.normalize = Normalize::L2;
    }
    if knn_only {
        raw.evaluation.linear.clear();
    }
    if trajectory {
        raw.embedding.trajectory = true;
    }
    let cfg = raw.check(&config.source).map_err(value_err)?;
    let (lshape, labels) = u8_array(labels, "labels")?;
    if lshape.len() != 1 {
        return Err(PyValueError::new_err(format!(
            "labels: shape {}, expected (n,)",
            shape_text(&lshape)
        )));
    }
    let n = labels.len();
    let mut mats = Vec::with_capacity(matrices.len());
    let mut infos = Vec::with_capacity(matrices.len());
    for ((name, m), t) in names.iter().zip(&matrices).zip(&times) {
        let x = f32_matrix(m, &format!("embeddings[{name:?}]"))?;
        if x.nrows() != n {
            return Err(PyValueError::new_err(format!(
                "embeddings[{name:?}]: {} rows for {n} labels",
                x.nrows()
            )));
        }
        infos.push(ViewInfo {
            name: name.clone(),
            dim: x.ncols(),
            time_ms: *t,
            file: format!("{name}.npy"),
        });
        mats.push(x);
    }
    let pixels = match images {
        None => None,
        Some(img) => {
            let (shape, px) = u8_array(img, "images")?;
            if shape.first() != Some(&n) || shape.len() < 2 {
                return Err(PyValueError::new_err(format!(
                    "images: shape {}, expected ({n}, pixels) or ({n}, rows, cols) for {n} labels",
                    shape_text(&shape)
                )));
            }
            let d = shape[1..].iter().product::<usize>();
            Some(geodyn::eval::try_pixels_to_f32(&px, n, d).map_err(value_err)?)
        }
    };
    let protocol = match n_reference {
        None => Protocol::RandomSplit,
        Some(r) if r < n => Protocol::HeldOut {
            n_reference: r,
            n_query: n - r,
        },
        Some(r) => {
            return Err(PyValueError::new_err(format!(
                "n_reference = {r}: leaves no query rows of {n}"
            )))
        }
    };
    pipeline::check_feasible(cfg.evaluation(), protocol, n).map_err(py_err)?;
    let source = MemoryViews {
        views: infos,
        matrices: mats,
    };
    let report = py
        .detach(|| {
            pipeline::with_threads(threads, || {
                score(
                    &cfg,
                    &labels,
                    protocol,
                    &source,
                    pixels.as_ref(),
                    n_recurrent,
                )
            })
        })
        .map_err(py_err)?;
    if let Some(dir) = report_dir {
        std::fs::create_dir_all(&dir).map_err(|e| {
            py_err(PipelineError::Io {
                path: dir.clone(),
                source: e,
            })
        })?;
        geodyn::report::write_report(&dir, &report).map_err(value_err)?;
    }
    serde_json::to_string(&report).map_err(|e| PyValueError::new_err(format!("the report: {e}")))
}

/// The scoring half of `pipeline::evaluate`, on views in memory.
fn score(
    cfg: &ExperimentConfig,
    labels: &[u8],
    protocol: Protocol,
    source: &MemoryViews,
    pixels: Option<&ndarray::Array2<f32>>,
    n_recurrent: Option<usize>,
) -> Result<geodyn::report::Report, PipelineError> {
    let t0 = std::time::Instant::now();
    let normalize = cfg.embedding().normalize();
    // The CLI's `geodyn evaluate` defaults: the same readout budget and the
    // same baselines and controls.
    let opts = EvaluateOptions::new(".");
    let mut ev = Evaluator::new(cfg.evaluation(), labels, protocol, normalize, &Quiet)?
        .with_linear_splits(opts.linear_splits);
    let trajectory = cfg.embedding().trajectory();
    let scored = pipeline::score_views(&mut ev, source, "", n_recurrent, trajectory)?;
    let baselines = match pixels {
        Some(px) => {
            let dims: Vec<usize> = source.views.iter().map(|v| v.dim).collect();
            ev.baselines(px, &dims, n_recurrent, opts.controls, cfg.seed())?
        }
        None => Vec::new(),
    };
    let mut rep = geodyn::report::Report::new(cfg.experiment());
    rep.config_hash = cfg.hash().to_string();
    rep.seed = cfg.seed();
    rep.dataset.n = labels.len();
    rep.protocol = ev.protocol().clone();
    ev.fill_report(&mut rep, scored.rows, baselines, t0);
    Ok(rep)
}

/// Images (n, rows, cols), labels (n,) and, after a draw, the rows kept.
type ImagesLabels<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Option<Vec<usize>>);

/// Images (n, rows, cols) and labels (n,) of IDX files (gzip or raw);
/// with `limit`, the stratified draw of `--limit` and the indices kept.
#[pyfunction]
#[pyo3(signature = (images, labels, limit=None))]
fn load_images<'py>(
    py: Python<'py>,
    images: PathBuf,
    labels: PathBuf,
    limit: Option<usize>,
) -> PyResult<ImagesLabels<'py>> {
    let spec = DataSpec {
        files: Some((images, labels)),
        limit,
    };
    let (set, rows) = py.detach(|| pipeline::load_images(&spec)).map_err(py_err)?;
    let n = set.len();
    let img = numpy::PyArray1::from_vec(py, set.pixels).reshape([n, set.rows, set.cols])?;
    Ok((img.into_any(), set.labels.into_pyarray(py).into_any(), rows))
}

/// Images and labels of IDX files, as read (no class checks, no draw).
#[pyfunction]
fn read_idx<'py>(
    py: Python<'py>,
    images: PathBuf,
    labels: PathBuf,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let set = py
        .detach(|| ImageSet::load(&images, &labels))
        .map_err(value_err)?;
    let n = set.len();
    let img = numpy::PyArray1::from_vec(py, set.pixels).reshape([n, set.rows, set.cols])?;
    Ok((img.into_any(), set.labels.into_pyarray(py).into_any()))
}

/// The built-in config names.
#[pyfunction]
fn builtin_configs() -> Vec<&'static str> {
    config::builtin_names()
}

/// The version of the geodyn library this module was built from.
fn core_version() -> String {
    geodyn::report::Report::new("").geodyn_version
}

#[pymodule]
fn _geodyn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", core_version())?;
    m.add_class::<Config>()?;
    m.add_class::<Network>()?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(load_images, m)?)?;
    m.add_function(wrap_pyfunction!(read_idx, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_configs, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_carries_the_core_version() {
        // maturin takes the wheel's version from this crate: it must be the
        // core's, or `geodyn.__version__` and report.json would disagree.
        assert_eq!(env!("CARGO_PKG_VERSION"), core_version());
    }

    #[test]
    fn error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = PipelineError::Io {
            path: PathBuf::from("x.idx"),
            source: io,
        };
        assert_eq!(error_chain(&e), "x.idx: I/O error: gone");
    }
}
