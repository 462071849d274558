//! Engine timing: one real digit (600 ms) through the experiment-3 network
//! (784 inputs -> 200 recurrent, recurrent all-to-all, STDP on the recurrent
//! edges), one thread. `cargo bench --bench engine`; `geodyn bench engine`
//! prints the same workload as arrivals per second and ms per digit.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geodyn::config;
use geodyn::dataset::ImageSet;
use geodyn::record::RecordSpec;
use geodyn::sim::{Simulator, Workspace};
use std::path::Path;

fn engine(c: &mut Criterion) {
    let text = include_str!("../configs/weights.toml");
    let cfg = config::parse(text, Path::new("configs/weights.toml"))
        .and_then(|r| r.check(Path::new("configs/weights.toml")))
        .expect("built-in config");
    let net = cfg.build_network().expect("network");
    let set = ImageSet::builtin().expect("built-in data");
    // Row 0's stimulus, as `geodyn encode` draws it.
    let encoder = geodyn::pipeline::Encoder::new(&net, &cfg).expect("encoder");
    let stim = encoder.stimulus(set.image(0), 0);
    let sim = Simulator::new(&net, cfg.run()).expect("simulator");
    let spec = RecordSpec::default();
    let mut ws = Workspace::default();
    let mut w = net.edge_weight().to_vec();
    let arrivals = sim
        .run(&mut ws, &mut w, &stim, &spec)
        .expect("run")
        .totals
        .arrivals;
    let mut g = c.benchmark_group("engine");
    g.sample_size(20);
    g.throughput(Throughput::Elements(arrivals));
    g.bench_function("exp3_n200_one_digit_600ms", |b| {
        b.iter(|| {
            w.copy_from_slice(net.edge_weight());
            sim.run(&mut ws, &mut w, &stim, &spec)
                .expect("run")
                .totals
                .arrivals
        })
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
