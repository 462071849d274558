"""Spread an encode over processes with concurrent.futures, then check the
concatenated shards equal one encode of all the rows.

    pip install ./python
    python examples/python_scale_out.py [N] [WORKERS]   # default 200 digits, 2 workers

Each worker builds the network from the config (the same seed gives the same
network) and encodes a contiguous block of rows with first_row set to the
block's first row: a row's stimulus seed derives from its row number, so the
blocks are exactly the rows of the single encode, as with `geodyn encode
--shard K/N`. The same pattern works with a cluster's executor (Dask,
Ray, ...): ship the config's TOML text and the row range, not the network.
"""

import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import geodyn

CONFIG = "weights"


def encode_block(args):
    toml_text, first_row, images = args
    net = geodyn.Network(geodyn.Config(toml_text))
    # One thread per process: the processes are the parallelism.
    return first_row, net.encode(images, threads=1, first_row=first_row)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    images, labels = geodyn.mnist10k(limit=n)
    toml_text = geodyn.Config(CONFIG).to_toml()
    bounds = np.linspace(0, n, workers + 1).astype(int)
    blocks = [(toml_text, a, images[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = sorted(pool.map(encode_block, blocks), key=lambda p: p[0])
    joined = {k: np.concatenate([p[k] for _, p in parts]) for k in parts[0][1]}
    t_pool = time.perf_counter() - t0
    print(f"{workers} processes: {n} digits in {t_pool:.1f} s")

    t0 = time.perf_counter()
    single = geodyn.Network(CONFIG).encode(images, threads=workers)
    print(f"one process, {workers} threads: {time.perf_counter() - t0:.1f} s")

    for k in single:
        assert joined[k].tobytes() == single[k].tobytes(), k
    print(f"the {len(single)} views of the {workers} shards equal the single encode, byte for byte")


if __name__ == "__main__":
    main()
