"""Encode 2,000 built-in digits with experiment 3's network, score the
embeddings beside raw pixels, and plot one digit's raster.

    pip install ./python          # from the repository root
    python examples/python_quickstart.py [N]   # N digits, default 2000

The plot (raster.png) needs matplotlib; without it the script skips it.
"""

import sys
import time

import numpy as np

import geodyn

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
images, labels = geodyn.mnist10k(limit=n)  # the CLI's `--limit n` draw
net = geodyn.Network("weights")  # experiment 3: N = 200, 39,800 plastic weights
print(net)

t0 = time.perf_counter()
emb = net.encode(images)  # {view: float32 (n, dim)}, all cores, GIL released
print(f"encoded {n} digits in {time.perf_counter() - t0:.1f} s")

rows = geodyn.evaluate(emb, labels, images=images, network=net)
print(f"{'embedding':<28}{'readout':<12}{'dim':>7}  accuracy")
for r in rows:
    if r["embedding"] in ("weights_t600", "weights_t300", "activity", "raw_pixels"):
        acc = f"{100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_sd']:.2f}"
        print(f"{r['embedding']:<28}{r['classifier']:<12}{r['dim']:>7}  {acc}")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: no raster plot")
    sys.exit(0)

run = net.simulate(images[0], row=0)  # the run behind row 0 of `emb`
a = run.activations
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 3]})
ax0.imshow(images[0], cmap="gray_r")
ax0.set_title(f"digit {labels[0]}")
ax0.axis("off")
stim = a["causal_edge"] < 0
ax1.scatter(a["time_ms"][stim], a["node"][stim], s=1, c="tab:gray", label="stimulus (input nodes)")
ax1.scatter(a["time_ms"][~stim], a["node"][~stim], s=1, c="tab:red", label="network-driven")
ax1.axhline(net.n_input - 0.5, lw=0.5, c="k")
ax1.set_xlabel("time (ms)")
ax1.set_ylabel("node (inputs below the line, recurrent above)")
ax1.set_title(f"{run.totals['activations']} activations, {run.totals['arrivals']} arrivals")
ax1.legend(loc="upper right", markerscale=8, fontsize=8)
fig.tight_layout()
fig.savefig("raster.png", dpi=120)
print("wrote raster.png")
