"""geodyn: exact event-driven simulation of geometric dynamic networks, and
classification from their dynamics without gradient descent.

The Python face of the geodyn library (the ``geodyn`` command line's
engine), numpy in and out. Each call runs the same library code as the CLI,
so a row encoded here is byte for byte the row ``geodyn encode`` writes.

Quick start::

    >>> import geodyn
    >>> images, labels = geodyn.mnist10k(limit=500)
    >>> net = geodyn.Network("weights")           # experiment 3
    >>> emb = net.encode(images)                  # {view: float32 (500, dim)}
    >>> rows = geodyn.evaluate(emb, labels, images=images, network=net)
    >>> [(r["embedding"], r["classifier"], round(r["accuracy_mean"], 3)) for r in rows][:2]

Nothing here prints; errors are ``ValueError`` (bad configs, data, shapes)
or ``TypeError`` (wrong types or dtypes) with the CLI's text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _geodyn

__version__: str = _geodyn.__version__

__all__ = [
    "Config",
    "Network",
    "Run",
    "evaluate",
    "read_idx",
    "mnist10k",
    "BUILTIN_CONFIGS",
    "__version__",
]

#: Names of the built-in configs: ``weights`` (experiment 3), ``paths``
#: (experiment 1), ``stdp`` (experiment 2).
BUILTIN_CONFIGS: Tuple[str, ...] = tuple(_geodyn.builtin_configs())

#: Environment variable naming a directory that holds the built-in dataset
#: (``images-idx3-ubyte.gz``, ``labels-idx1-ubyte.gz``) when the installed
#: package lacks it.
DATA_ENV = "GEODYN_DATA"

_PathLike = Union[str, "os.PathLike[str]"]


class Config:
    """A checked experiment config, as the CLI's CONFIG argument.

    ``source`` is one of

    - a built-in name: ``"weights"`` (experiment 3), ``"paths"``
      (experiment 1), ``"stdp"`` (experiment 2);
    - a path to a TOML file (a ``str`` naming an existing file, or a
      ``pathlib.Path``); a file wins over a built-in name, as in the CLI;
    - TOML text (a ``str`` holding a newline or ``=``);
    - a ``dict`` of the config's tables (the TOML's structure);
    - another ``Config`` (copied).

    ``n_recurrent`` overrides ``network.n_recurrent`` (the CLI's
    ``--n-recurrent``). Unknown keys and bad values raise ``ValueError``
    with the CLI's message (file, field, value).

    Example::

        >>> cfg = geodyn.Config("weights", n_recurrent=50)
        >>> cfg.n_recurrent
        50
        >>> same = geodyn.Config(cfg.to_toml())
        >>> same.hash == cfg.hash
        True
        >>> geodyn.Config({"experiment": "x", "network": {"n_recurrent": 10}, "bogus": 1})
        Traceback (most recent call last):
        ValueError: <dict>: TOML parse error at line 1, column 1 ... unknown field `bogus` ...
    """

    def __init__(self, source: Any = "weights", *, n_recurrent: Optional[int] = None):
        if isinstance(source, Config):
            source = source.to_toml()
        if isinstance(source, _geodyn.Config):
            self._inner = source
            return
        n = None if n_recurrent is None else _count(n_recurrent, "n_recurrent")
        if isinstance(source, Mapping):
            try:
                text = json.dumps(source, allow_nan=False)
            except (TypeError, ValueError) as e:
                raise ValueError(f"<dict>: not a config of plain values: {e}") from None
            self._inner = _geodyn.Config.from_json(text, "<dict>", n)
        elif isinstance(source, os.PathLike):
            self._inner = _geodyn.Config.from_spec(os.fspath(source), n)
        elif isinstance(source, str):
            if ("\n" in source or "=" in source) and not os.path.exists(source):
                self._inner = _geodyn.Config.from_toml(source, "<string>", n)
            else:
                self._inner = _geodyn.Config.from_spec(source, n)
        else:
            raise TypeError(
                f"Config: expected a built-in name, a path, TOML text or a dict, "
                f"got {type(source).__name__}"
            )

    def to_toml(self) -> str:
        """The checked config as TOML, every default filled in.

        ``Config(cfg.to_toml())`` is the same config (same ``hash``); the
        text is what ``geodyn encode`` records in its manifest.

        Example::

            >>> print(geodyn.Config("weights").to_toml()[:40])
        """
        return self._inner.to_toml()

    @property
    def experiment(self) -> str:
        """The experiment name carried into reports."""
        return self._inner.experiment

    @property
    def seed(self) -> int:
        """Seed of the network builder; every row's stimulus seed derives from it."""
        return self._inner.seed

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical TOML (``config_hash`` in manifests and reports)."""
        return self._inner.hash

    @property
    def n_recurrent(self) -> int:
        """Number of recurrent nodes."""
        return self._inner.n_recurrent

    def __repr__(self) -> str:
        return (
            f"geodyn.Config({self.experiment!r}, n_recurrent={self.n_recurrent}, "
            f"hash={self.hash[:12]!r}, source={self._inner.source!r})"
        )


def _count(v: Any, what: str) -> int:
    """A non-negative int argument (a bool or float is refused, not truncated)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what}: expected an int, got {type(v).__name__}")
    if v < 0:
        raise ValueError(f"{what} = {v}: must be >= 0")
    return int(v)


def _images(images: Any, what: str = "images") -> np.ndarray:
    """An array of uint8 pixels, refused (not converted) when of another dtype:
    casting floats in 0..1 to uint8 would silently give black images."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(
            f"{what}: dtype {arr.dtype}, expected uint8 (pixel values 0..255); "
            f"convert with np.asarray(x, dtype=np.uint8) once the values are 0..255"
        )
    return arr


class Run:
    """What one simulation recorded (returned by :meth:`Network.simulate`).

    Attributes:

    - ``activations``: structured array, one entry per activation in time
      order, fields ``node`` (uint32), ``time_ms`` (float64) and
      ``causal_edge`` (int64: the edge whose arrival fired the node, -1 for
      an activation imposed by the stimulus); empty unless recorded.
    - ``counts``, ``lost``: per node, activations and arrivals lost to
      refractoriness (uint32, length ``n_nodes``); empty unless recorded.
    - ``activity``: (n_nodes, n_bins) activation counts per time bin of
      ``activity_bin_ms``; shape (0, 0) unless recorded.
    - ``snapshots``: ``(times_ms, weights)``, weights (n_snapshots,
      len(snapshot_edges)) float32 of the edges ``snapshot_edges``.
    - ``stimulus``: the input activations the run was driven with
      (structured array ``node``, ``time_ms``), before refractoriness.
    - ``final_weights``: every edge's weight at the end (float32).
    - ``totals``: dict of the run counters (arrivals, lost_arrivals,
      activations, external_activations, lost_external, stdp_updates), the
      numbers ``geodyn simulate`` prints.
    """

    def __init__(self, d: Dict[str, Any]):
        n = len(d["node"])
        act = np.empty(n, dtype=[("node", "<u4"), ("time_ms", "<f8"), ("causal_edge", "<i8")])
        act["node"] = d["node"]
        act["time_ms"] = d["time_ms"]
        act["causal_edge"] = d["causal_edge"]
        self.activations: np.ndarray = act
        stim = np.empty(len(d["stimulus_node"]), dtype=[("node", "<u4"), ("time_ms", "<f8")])
        stim["node"] = d["stimulus_node"]
        stim["time_ms"] = d["stimulus_time_ms"]
        self.stimulus: np.ndarray = stim
        self.counts: np.ndarray = d["counts"]
        self.lost: np.ndarray = d["lost"]
        self.activity: np.ndarray = d["activity"]
        self.activity_bin_ms: Optional[float] = d["activity_bin_ms"]
        self.snapshots: Tuple[np.ndarray, np.ndarray] = (
            d["snapshot_time_ms"],
            d["snapshot_weights"],
        )
        self.snapshot_edges: np.ndarray = d["snapshot_edges"]
        self.final_weights: np.ndarray = d["final_weights"]
        self.totals: Dict[str, int] = json.loads(d["totals_json"])

    def __repr__(self) -> str:
        t = self.totals
        return (
            f"geodyn.Run({t['activations']} activations, {t['arrivals']} arrivals, "
            f"{t['lost_arrivals']} lost)"
        )


_RECORD_DEFAULT = ("activations", "counts")


class Network:
    """The network of a config, built as every CLI command builds it.

    ``config`` is a :class:`Config` or anything ``Config`` accepts (a
    built-in name, a path, TOML text, a dict); ``n_recurrent`` overrides
    the config's.

    Example::

        >>> net = geodyn.Network("weights", n_recurrent=50)
        >>> net.n_input, net.n_recurrent
        (784, 50)
        >>> arrays = net.export()          # positions, edges, node parameters
        >>> arrays["edge_latency_ms"].shape == (net.n_edges,)
        True
    """

    def __init__(self, config: Any = "weights", *, n_recurrent: Optional[int] = None):
        if not isinstance(config, Config) or n_recurrent is not None:
            config = Config(config, n_recurrent=n_recurrent)
        self.config: Config = config
        self._inner = _geodyn.Network(config._inner)

    @property
    def n_nodes(self) -> int:
        """Number of nodes (inputs first, then recurrent)."""
        return self._inner.n_nodes

    @property
    def n_input(self) -> int:
        """Number of input nodes (one per pixel)."""
        return self._inner.n_input

    @property
    def n_recurrent(self) -> int:
        """Number of recurrent nodes."""
        return self._inner.n_recurrent

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return self._inner.n_edges

    @property
    def n_plastic(self) -> int:
        """Number of plastic (STDP) edges."""
        return self._inner.n_plastic

    @property
    def views(self) -> List[Dict[str, Any]]:
        """The views :meth:`encode` returns: dicts of ``name``, ``dim``, ``time_ms``.

        Example::

            >>> [v["name"] for v in geodyn.Network("weights").views][:2]
        """
        return [
            {"name": n, "dim": d, "time_ms": t} for (n, d, t) in self._inner.views()
        ]

    def export(self) -> Dict[str, np.ndarray]:
        """The network as numpy arrays, named as ``geodyn network --export`` names its files.

        Keys: ``node_position_um`` (n_nodes, 3), ``node_population`` (0 input,
        1 recurrent), ``node_refractory_period_ms``, ``node_threshold``,
        ``node_summation_tau_ms``, ``edge_source``, ``edge_target``,
        ``edge_length_um``, ``edge_velocity_um_per_ms``, ``edge_latency_ms``,
        ``edge_weight`` (initial, float32), ``edge_plastic`` (bool),
        ``edge_class``.

        Example::

            >>> a = geodyn.Network("weights", n_recurrent=20).export()
            >>> a["node_position_um"].shape
            (804, 3)
        """
        return dict(self._inner.export())

    def summary(self) -> Dict[str, Any]:
        """Sizes and, per edge class, the latency and refraction-ratio
        quantiles (R_target / latency) of ``geodyn network``: the
        ``network`` field of report.json.

        Example::

            >>> s = geodyn.Network("weights").summary()
            >>> s["by_class"]["InputToRecurrent"]["latency_ms_quantiles_0_10_50_90_100"]
        """
        return json.loads(self._inner.summary_json())

    def simulate(
        self,
        image: Any = None,
        *,
        row: int = 0,
        activations: Optional[Tuple[Any, Any]] = None,
        record: Iterable[str] = _RECORD_DEFAULT,
        activity_bin_ms: Optional[float] = None,
        snapshot_ms: Optional[Sequence[float]] = None,
    ) -> Run:
        """Runs one stimulus through the network and returns a :class:`Run`.

        Either ``image`` (uint8, ``(784,)`` or ``(28, 28)``), driven with
        the Poisson trains ``geodyn encode`` draws for row ``row`` (so
        ``simulate(images[i], row=i)`` is the run behind row i of
        ``encode(images)`` and of ``geodyn simulate --image i``), or
        ``activations=(nodes, times_ms)``: activations imposed on any nodes
        at any times, to drive the network with anything.

        ``record`` names what to keep: ``"activations"`` (with causal
        edges), ``"counts"`` (per node), ``"activity"`` (binned, with the
        config's bin width or ``activity_bin_ms``), ``"snapshots"`` (weights
        of the plastic edges at the config's snapshot times or
        ``snapshot_ms``). The totals are always kept; recording never
        changes the run. The GIL is released while it runs.

        Example::

            >>> images, labels = geodyn.mnist10k()
            >>> run = geodyn.Network("weights").simulate(images[0], record=["activations", "activity"])
            >>> run.totals["arrivals"] > 0, run.activations["time_ms"][:3]
            >>> nodes, times = np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0])
            >>> geodyn.Network("weights").simulate(activations=(nodes, times)).totals["external_activations"]
            3
        """
        if isinstance(record, str):
            record = [record]
        record = list(record)
        row = _count(row, "row")
        snaps = None if snapshot_ms is None else [float(t) for t in snapshot_ms]
        if activations is not None:
            if image is not None:
                raise ValueError("simulate: give an image or activations, not both")
            try:
                nodes, times = activations
            except (TypeError, ValueError):
                raise TypeError("activations: expected a pair (nodes, times_ms) of arrays") from None
            nodes, times = np.asarray(nodes), np.asarray(times)
            if nodes.ndim != 1 or times.ndim != 1:
                raise ValueError(
                    f"activations: nodes and times_ms must be 1-d, got shapes {nodes.shape} and {times.shape}"
                )
            if nodes.size and nodes.dtype.kind not in "iu":
                raise TypeError(f"activations: nodes of dtype {nodes.dtype}, expected integers")
            if times.size and times.dtype.kind not in "iuf":
                raise TypeError(f"activations: times_ms of dtype {times.dtype}, expected numbers")
            if nodes.dtype.kind == "u" and nodes.size and nodes.max() > np.iinfo(np.int64).max:
                raise ValueError("activations: node number past int64")
            d = self._inner.simulate(
                None,
                row,
                np.ascontiguousarray(nodes, dtype=np.int64),
                np.ascontiguousarray(times, dtype=np.float64),
                record,
                activity_bin_ms,
                snaps,
            )
        else:
            if image is None:
                raise ValueError("simulate: give an image or activations=(nodes, times_ms)")
            d = self._inner.simulate(
                _images(image, "image"), row, None, None, record, activity_bin_ms, snaps
            )
        return Run(d)

    def encode(
        self,
        images: Any,
        views: Optional[Sequence[str]] = None,
        threads: Optional[int] = None,
        *,
        first_row: int = 0,
    ) -> Dict[str, np.ndarray]:
        """Encodes images: a dict view name -> float32 array (n, dim).

        ``images`` is uint8, ``(n, 784)`` or ``(n, 28, 28)`` (any strides:
        slices and transposes are read in logical order). Row i is
        byte-identical to row ``first_row + i`` of ``geodyn encode`` on the
        same images and config: the stimulus seed of a row derives from the
        config seed and the row number, so give ``first_row`` when you
        encode a shard of a larger set. ``views`` picks views by name
        (default: all, see :attr:`views`); ``threads`` is the worker count
        (default: all cores; it never changes the result). The GIL is
        released while the rows are encoded; Ctrl-C stops it.

        Example::

            >>> images, labels = geodyn.mnist10k(limit=100)
            >>> emb = geodyn.Network("weights").encode(images, threads=2)
            >>> {k: v.shape for k, v in emb.items()}
        """
        if views is not None:
            if isinstance(views, str):
                views = [views]
            views = list(views)
        t = None if threads is None else _count(threads, "threads")
        return dict(
            self._inner.encode(_images(images), views, t, _count(first_row, "first_row"))
        )

    def __repr__(self) -> str:
        return (
            f"geodyn.Network({self.config.experiment!r}: {self.n_input} input + "
            f"{self.n_recurrent} recurrent nodes, {self.n_edges} edges)"
        )


def _float_matrix(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{what}: dtype {arr.dtype}, expected numbers")
    if arr.ndim != 2:
        raise ValueError(f"{what}: shape {arr.shape}, expected (n, dim)")
    # float32 is what encode returns and what the CLI scores; others are cast.
    return arr.astype(np.float32, copy=False)


def evaluate(
    embeddings: Union[Mapping[str, Any], Any],
    labels: Any,
    *,
    images: Any = None,
    network: Optional[Network] = None,
    config: Any = None,
    n_reference: Optional[int] = None,
    l2: bool = False,
    knn_only: bool = False,
    trajectory: bool = False,
    threads: Optional[int] = None,
    report: Optional[_PathLike] = None,
) -> List[Dict[str, Any]]:
    """Scores embeddings as ``geodyn evaluate`` does; returns the report rows.

    ``embeddings`` is a dict view name -> (n, dim) array (what
    :meth:`Network.encode` returns) or one array (named ``embedding``);
    ``labels`` is uint8 (n,). The config's kNN and linear readouts run on
    the same splits for every view: ``repeats`` random splits of all rows
    (sizes from the config's ``evaluation``), or with ``n_reference`` the
    first ``n_reference`` rows as reference and the rest as queries
    (``--query-images``). With ``images`` (uint8, the encoded images in row
    order) the baselines are scored beside them: raw pixels and a random
    projection to each view's dimension. ``l2``, ``knn_only`` and
    ``trajectory`` are the CLI's ``--l2``, ``--knn-only`` and
    ``--trajectory``.

    The config is ``network``'s (which also gives the views' snapshot
    times and N), else ``config`` (a :class:`Config` or anything it
    accepts; default ``"weights"``). With ``report`` (a directory),
    report.json and report.md are written there, as by the CLI (without
    figures).

    Returns one dict per row (views first, then baselines): ``embedding``,
    ``classifier`` (knn, linear_svm, ridge), ``n_recurrent``, ``time_ms``,
    ``dim``, ``accuracy_mean``, ``accuracy_sd``, ``per_class``,
    ``confusion``; the rows of report.json's ``results`` and ``baselines``.

    Example::

        >>> images, labels = geodyn.mnist10k(limit=500)
        >>> net = geodyn.Network("weights")
        >>> rows = geodyn.evaluate(net.encode(images), labels, images=images, network=net)
        >>> {(r["embedding"], r["classifier"]): r["accuracy_mean"] for r in rows}
    """
    if network is not None and not isinstance(network, Network):
        raise TypeError(f"network: expected a geodyn.Network, got {type(network).__name__}")
    if network is not None and config is not None:
        raise ValueError("evaluate: give network or config, not both")
    if network is not None:
        cfg = network.config
        times = {v["name"]: v["time_ms"] for v in network.views}
        n_rec: Optional[int] = network.n_recurrent
    else:
        cfg = config if isinstance(config, Config) else Config("weights" if config is None else config)
        times, n_rec = {}, None
    if not isinstance(embeddings, Mapping):
        embeddings = {"embedding": embeddings}
    if not embeddings:
        raise ValueError("embeddings: no views to evaluate")
    names = [str(k) for k in embeddings]
    mats = [_float_matrix(embeddings[k], f"embeddings[{k!r}]") for k in embeddings]
    labels = _images(labels, "labels")
    imgs = None if images is None else _images(images, "images")
    nref = None if n_reference is None else _count(n_reference, "n_reference")
    t = None if threads is None else _count(threads, "threads")
    text = _geodyn.evaluate(
        names,
        mats,
        [times.get(n) for n in names],
        labels,
        imgs,
        cfg._inner,
        nref,
        bool(l2),
        bool(knn_only),
        bool(trajectory),
        n_rec,
        t,
        None if report is None else os.fspath(report),
    )
    rep = json.loads(text)
    return rep["results"] + rep["baselines"]


def read_idx(images: _PathLike, labels: Optional[_PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Reads IDX files (gzip or raw): ``(images, labels)``, uint8 arrays of
    shape (n, rows, cols) and (n,).

    ``labels`` defaults to the images path with ``images`` replaced by
    ``labels`` and ``idx3`` by ``idx1`` in the file name (the MNIST naming:
    ``train-images-idx3-ubyte.gz`` -> ``train-labels-idx1-ubyte.gz``).

    Example::

        >>> x, y = geodyn.read_idx("t10k-images-idx3-ubyte.gz")
        >>> x.shape, y.shape
        ((10000, 28, 28), (10000,))
    """
    images = Path(images)
    if labels is None:
        name = images.name.replace("images", "labels").replace("idx3", "idx1")
        if name == images.name:
            raise ValueError(
                f"{images}: cannot guess the labels file from this name; give labels="
            )
        labels = images.with_name(name)
    return _geodyn.read_idx(os.fspath(images), os.fspath(labels))


def _data_dir(path: Optional[_PathLike]) -> Path:
    """Where the built-in dataset is: ``path``, else ``$GEODYN_DATA``, else
    the copy inside the installed package."""
    if path is not None:
        return Path(path)
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "data" / "mnist-10k"


def mnist10k(limit: Optional[int] = None, *, path: Optional[_PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The built-in dataset, the CLI's default: 10,000 MNIST digits (the
    original test set), ``(images, labels)`` as uint8 (n, 28, 28) and (n,).

    With ``limit``, the same seeded stratified draw as the CLI's
    ``--limit N`` (an equal share of each class, in file order), so
    ``net.encode(mnist10k(limit=N)[0])`` matches ``geodyn encode CONFIG
    --limit N`` row for row. The files ship inside the package; ``path`` (or
    the environment variable ``GEODYN_DATA``) names another directory
    holding ``images-idx3-ubyte.gz`` and ``labels-idx1-ubyte.gz``.

    Example::

        >>> images, labels = geodyn.mnist10k()
        >>> images.shape, images.dtype, np.bincount(labels)[:3]
        ((10000, 28, 28), dtype('uint8'), array([ 980, 1135, 1032]))
    """
    d = _data_dir(path)
    lim = None if limit is None else _count(limit, "limit")
    img, lab = d / "images-idx3-ubyte.gz", d / "labels-idx1-ubyte.gz"
    images, labels, _rows = _geodyn.load_images(os.fspath(img), os.fspath(lab), lim)
    return images, labels
