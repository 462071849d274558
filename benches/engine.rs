//! Engine timing: one real digit (600 ms) through the experiment-3 network
//! (784 inputs -> N recurrent, recurrent all-to-all, STDP on the recurrent
//! edges), one thread, at N = 200, 400 and 1000, recording totals only, and
//! at N = 200 also recording what an encode records (weight snapshots,
//! activity). `cargo bench --bench engine`; `geodyn bench engine
//! --n-recurrent 200,400,1000 [--record]` prints the same workloads in CPU
//! time, arrivals per second and ms per digit.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use geodyn::config;
use geodyn::dataset::ImageSet;
use geodyn::record::RecordSpec;
use geodyn::sim::{Simulator, Workspace};
use std::path::Path;

fn engine(c: &mut Criterion) {
    let text = include_str!("../configs/weights.toml");
    let path = Path::new("configs/weights.toml");
    let set = ImageSet::builtin().expect("built-in data");
    let mut g = c.benchmark_group("engine");
    for (n_rec, record) in [(200, false), (200, true), (400, false), (1000, false)] {
        let mut raw = config::parse(text, path).expect("built-in config");
        raw.network.n_recurrent = n_rec;
        let cfg = raw.check(path).expect("built-in config");
        let net = cfg.build_network().expect("network");
        // Row 0's stimulus, as `geodyn encode` draws it.
        let encoder = geodyn::pipeline::Encoder::new(&net, &cfg).expect("encoder");
        let stim = encoder.stimulus(set.image(0), 0);
        let sim = Simulator::new(&net, cfg.run()).expect("simulator");
        let totals_only = RecordSpec::default();
        let spec = if record {
            encoder.record_spec()
        } else {
            &totals_only
        };
        let mut ws = Workspace::default();
        let mut w = net.edge_weight().to_vec();
        let arrivals = sim
            .run(&mut ws, &mut w, &stim, spec)
            .expect("run")
            .totals
            .arrivals;
        g.sample_size(if n_rec > 200 { 10 } else { 20 });
        g.throughput(Throughput::Elements(arrivals));
        let name = format!(
            "exp3_n{n_rec}_one_digit_600ms{}",
            if record { "_recorded" } else { "" }
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                w.copy_from_slice(net.edge_weight());
                sim.run(&mut ws, &mut w, &stim, spec)
                    .expect("run")
                    .totals
                    .arrivals
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
