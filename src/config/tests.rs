use super::*;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name)
}

fn base() -> String {
    std::fs::read_to_string(shipped("weights.toml")).unwrap()
}

/// Checks `text` and returns the error message.
fn error_of(text: &str) -> String {
    match parse(text, Path::new("test.toml")).and_then(|r| r.check(Path::new("test.toml"))) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn replaced(from: &str, to: &str) -> String {
    let b = base();
    assert!(b.contains(from), "base config lacks {from:?}");
    b.replacen(from, to, 1)
}

#[test]
fn shipped_configs_check() {
    for entry in std::fs::read_dir(shipped("")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "large.toml") {
            // Not an experiment: the large-network config of `bench large`.
            LargeConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        } else if path.extension().is_some_and(|e| e == "toml") {
            let cfg = load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!cfg.experiment.is_empty());
            assert_eq!(cfg.hash.len(), 64);
        }
    }
    let cfg = load(&shipped("weights.toml")).unwrap();
    assert_eq!(cfg.n_recurrent(), 200);
    match &cfg.network {
        NetworkPlan::TwoPopulation(s) => {
            assert_eq!(s.connection_probability, [[0.0, 1.0], [0.0, 1.0]]);
            assert!(
                (s.recurrent_weights.scale - 0.5).abs() < 1e-12,
                "sqrt(50/200)"
            );
            assert_eq!(s.input_weights.scale, 1.0);
        }
        _ => panic!("layered expected"),
    }
    // The stimulus takes the input refractory period from the network it drives.
    let net = cfg.build_network().unwrap();
    assert!(net.refractory_period_ms[..net.n_input()]
        .iter()
        .all(|&r| r == 5.0));
    assert_eq!(cfg.stimulus.duration_ms, 600.0);
}

#[test]
fn hash_depends_on_content() {
    let a = parse(&base(), Path::new("a"))
        .unwrap()
        .check(Path::new("a"))
        .unwrap();
    let b = parse(&replaced("seed = 1", "seed = 2"), Path::new("a"))
        .unwrap()
        .check(Path::new("a"))
        .unwrap();
    let a2 = parse(&format!("# a comment\n{}", base()), Path::new("a"))
        .unwrap()
        .check(Path::new("a"))
        .unwrap();
    assert_ne!(a.hash, b.hash);
    assert_eq!(a.hash, a2.hash, "comments do not change the hash");
}

#[test]
fn each_bad_value_names_its_field() {
    let cases = [
        (
            "velocity_um_per_ms = 100.0",
            "velocity_um_per_ms = -100.0",
            "network.velocity_um_per_ms = -100",
        ),
        (
            "velocity_um_per_ms = 100.0",
            "velocity_um_per_ms = { min = 0.0, max = 10.0 }",
            "network.velocity_um_per_ms = 0",
        ),
        (
            "threshold = 5.0",
            "threshold = 0.0",
            "network.recurrent_nodes.threshold = 0",
        ),
        (
            "threshold = 5.0",
            "threshold = -2.0",
            "network.recurrent_nodes.threshold = -2",
        ),
        (
            "recurrent_connection_probability = 1.0",
            "recurrent_connection_probability = 1.5",
            "network.recurrent_connection_probability = 1.5",
        ),
        (
            "excitatory_fraction = 0.7",
            "excitatory_fraction = -0.1",
            "network.input_weights.excitatory_fraction = -0.1",
        ),
        ("w_min = -1.0", "w_min = 2.0", "stdp.w_min = 2"),
        (
            "refractory_period_ms = 5.0",
            "refractory_period_ms = -1.0",
            "network.input_nodes.refractory_period_ms = -1",
        ),
        (
            "summation_tau_ms = 10.0",
            "summation_tau_ms = 0.0",
            "network.recurrent_nodes.summation_tau_ms = 0",
        ),
        (
            "tortuosity = [1.0, 1.3]",
            "tortuosity = [0.9, 1.3]",
            "network.tortuosity",
        ),
        (
            "duration_ms = 600.0",
            "duration_ms = 200.0",
            "embedding.snapshot_times_ms = 300",
        ),
        ("k = 5", "k = 0", "evaluation.k = 0"),
        (
            "tau_plus_ms = 20.0",
            "tau_plus_ms = -20.0",
            "stdp.tau_plus_ms = -20",
        ),
        (
            "max_rate_hz = 100.0",
            "max_rate_hz = 0.0",
            "stimulus.max_rate_hz = 0",
        ),
        (
            "recurrent_box_min_um = [0.0, 0.0, 50.0]",
            "recurrent_box_min_um = [0.0, 0.0, 0.0]",
            "network.recurrent_box_min_um",
        ),
    ];
    for (from, to, expect) in cases {
        let msg = error_of(&replaced(from, to));
        assert!(msg.starts_with("test.toml: "), "{msg}");
        assert!(
            msg.contains(expect),
            "{to}: got {msg:?}, expected it to contain {expect:?}"
        );
    }
}

#[test]
fn unknown_keys_and_bad_types_are_rejected() {
    let msg = error_of(&replaced(
        "n_recurrent = 200",
        "n_recurrent = 200\nn_recurrant = 3",
    ));
    assert!(
        msg.contains("test.toml") && msg.contains("n_recurrant"),
        "{msg}"
    );
    let msg = error_of(&replaced("[stdp]", "[stdp]\nlearning_rate = 0.1"));
    assert!(msg.contains("learning_rate"), "{msg}");
    let msg = error_of(&replaced("n_recurrent = 200", "n_recurrent = -5"));
    assert!(msg.contains("n_recurrent"), "{msg}");
    let msg = error_of(&replaced("train = \"regular\"", "train = \"bursty\""));
    assert!(msg.contains("bursty"), "{msg}");
    let msg = error_of("experiment = \"x\"\n");
    assert!(msg.contains("network"), "{msg}");
}

#[test]
fn layered_and_sbm_keys_do_not_mix() {
    let msg = error_of(&replaced("builder = \"layered\"", "builder = \"sbm\""));
    assert!(msg.contains("recurrent_connection_probability"), "{msg}");
    let text = replaced("builder = \"layered\"", "builder = \"sbm\"").replace(
        "recurrent_connection_probability = 1.0",
        "connection_probability = [[0.0, 0.2], [0.0, 1.2]]",
    );
    let msg = error_of(&text);
    assert!(
        msg.contains("network.connection_probability[1][1] = 1.2"),
        "{msg}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = load(Path::new("/no/such/config.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/no/such/config.toml"), "{e}");
}

#[test]
fn edge_list_networks() {
    let text = r#"
experiment = "tiny"
[network]
builder = "edge_list"
[[network.nodes]]
position_um = [0.0, 0.0, 0.0]
population = "input"
[[network.nodes]]
position_um = [30.0, 40.0, 0.0]
threshold = 0.5
[[network.edges]]
source = 0
target = 1
velocity_um_per_ms = 10.0
weight = 1.0
[embedding]
kind = "activity"
"#;
    let cfg = parse(text, Path::new("t"))
        .unwrap()
        .check(Path::new("t"))
        .unwrap();
    match cfg.network {
        NetworkPlan::EdgeList { nodes, edges } => {
            assert_eq!(nodes.len(), 2);
            assert_eq!(
                edges[0].length_um, 50.0,
                "default length = straight distance"
            );
        }
        _ => panic!(),
    }
    let bad = text.replace("target = 1", "target = 7");
    let msg = error_of(&bad);
    assert!(msg.contains("network.edges[0].target = 7"), "{msg}");
    let bad = text.replace("velocity_um_per_ms = 10.0", "velocity_um_per_ms = -10.0");
    assert!(error_of(&bad).contains("network.edges[0].velocity_um_per_ms = -10"));
}

#[test]
fn zero_refractory_period_on_a_cycle_is_rejected() {
    // The recurrent layer is all-to-all: R = 0 there lets activity explode.
    let text = base().replacen(
        "[network.recurrent_nodes]\nrefractory_period_ms = 5.0",
        "[network.recurrent_nodes]\nrefractory_period_ms = 0.0",
        1,
    );
    let msg = error_of(&text);
    assert!(
        msg.contains("network.recurrent_nodes.refractory_period_ms = 0")
            && msg.contains("cycle")
            && msg.contains("recurrent_connection_probability"),
        "{msg}"
    );
    // A uniform draw that can reach 0 is the same.
    let text = base().replacen(
        "[network.recurrent_nodes]\nrefractory_period_ms = 5.0",
        "[network.recurrent_nodes]\nrefractory_period_ms = { min = 0.0, max = 2.0 }",
        1,
    );
    assert!(error_of(&text).contains("network.recurrent_nodes.refractory_period_ms = 0"));
    // Without recurrent edges nothing loops, so R = 0 is allowed; so it is
    // for the feed-forward input nodes of the layered network.
    let text = base()
        .replacen(
            "[network.recurrent_nodes]\nrefractory_period_ms = 5.0",
            "[network.recurrent_nodes]\nrefractory_period_ms = 0.0",
            1,
        )
        .replace(
            "recurrent_connection_probability = 1.0",
            "recurrent_connection_probability = 0.0",
        )
        .replace(
            "refractory_period_ms = 5.0            # caps",
            "refractory_period_ms = 0.0            # caps",
        );
    parse(&text, Path::new("t"))
        .unwrap()
        .check(Path::new("t"))
        .unwrap();
}

#[test]
fn zero_refractory_period_in_an_edge_list_cycle_is_rejected() {
    let chain = r#"
experiment = "loop"
[network]
builder = "edge_list"
[[network.nodes]]
position_um = [0.0, 0.0, 0.0]
population = "input"
refractory_period_ms = 0.0
[[network.nodes]]
position_um = [30.0, 40.0, 0.0]
refractory_period_ms = 0.0
[[network.nodes]]
position_um = [60.0, 40.0, 0.0]
refractory_period_ms = 0.0
[[network.edges]]
source = 0
target = 1
velocity_um_per_ms = 10.0
weight = 1.0
[[network.edges]]
source = 1
target = 2
velocity_um_per_ms = 10.0
weight = 1.0
[embedding]
kind = "activity"
"#;
    // A chain: no cycle, R = 0 is fine.
    parse(chain, Path::new("t"))
        .unwrap()
        .check(Path::new("t"))
        .unwrap();
    // Close 1 -> 2 -> 1: nodes 1 and 2 now lie on a cycle.
    let looped = chain.replace(
        "[embedding]",
        "[[network.edges]]\nsource = 2\ntarget = 1\nvelocity_um_per_ms = 10.0\nweight = 1.0\n[embedding]",
    );
    let msg = error_of(&looped);
    assert!(
        msg.contains("network.nodes[1].refractory_period_ms = 0") && msg.contains("cycle"),
        "{msg}"
    );
}

#[test]
fn run_limits_are_read_and_checked() {
    let text = replaced(
        "duration_ms = 600.0",
        "duration_ms = 600.0\nmax_events_in_flight = 1000\nmax_arrivals = 5000",
    );
    let cfg = parse(&text, Path::new("t"))
        .unwrap()
        .check(Path::new("t"))
        .unwrap();
    let l = cfg.run().limits();
    assert_eq!(l.max_events_in_flight, 1000);
    assert_eq!(l.max_arrivals, 5000);
    assert_eq!(
        l.max_activations,
        crate::sim::RunLimits::default().max_activations
    );
    let msg = error_of(&replaced(
        "duration_ms = 600.0",
        "duration_ms = 600.0\nmax_activations = 0",
    ));
    assert!(msg.contains("simulation.max_activations = 0"), "{msg}");
    // Unset limits are not serialised: the shipped configs keep their hash.
    let plain = parse(&base(), Path::new("t")).unwrap();
    let canonical = toml::to_string(&plain).unwrap();
    for key in ["max_events_in_flight", "max_activations", "max_arrivals"] {
        assert!(!canonical.contains(key), "{key} in {canonical}");
    }
}

/// Config fuzz: seeded perturbations of the shipped configs' numbers
/// (negative, zero, huge, tiny, NaN and infinity, overflowing integers,
/// strings) through the parser and the checker, and, when the check passes
/// on a small network, through the network builder and the simulator's
/// preparation: each case is `Ok` or an error, never a panic.
#[test]
fn fuzz_config_numbers_never_panic() {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const VALUES: [&str; 20] = [
        "-1",
        "0",
        "0.0",
        "-0.0",
        "1",
        "0.5",
        "3",
        "1e300",
        "-1e300",
        "1e-300",
        "-1e-300",
        "nan",
        "inf",
        "-inf",
        "18446744073709551616",
        "4294967297",
        "1e9",
        "-7",
        "\"x\"",
        "[]",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(0xc0f);
    let (mut cases, mut accepted, mut built, mut panics) = (0, 0, 0, 0);
    for name in ["weights.toml", "paths.toml", "stdp.toml"] {
        let text = std::fs::read_to_string(shipped(name)).unwrap();
        // Byte ranges of the number literals outside comments.
        let mut spans = Vec::new();
        for (start, line) in text.split_inclusive('\n').scan(0, |pos, l| {
            let s = *pos;
            *pos += l.len();
            Some((s, l))
        }) {
            let code = line.split('#').next().unwrap_or("");
            let b = code.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let starts = (b[i].is_ascii_digit() || b[i] == b'-')
                    && (i == 0 || b" =[,".contains(&b[i - 1]));
                if starts {
                    let mut j = i + 1;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b".+-_".contains(&b[j])) {
                        j += 1;
                    }
                    if code[i..j].parse::<f64>().is_ok() {
                        spans.push((start + i, start + j));
                    }
                    i = j;
                } else {
                    i += 1;
                }
            }
        }
        assert!(
            spans.len() > 20,
            "{name}: only {} numbers found",
            spans.len()
        );
        for _ in 0..700 {
            let mut chosen: Vec<(usize, usize)> = (0..rng.gen_range(1..=3))
                .map(|_| spans[rng.gen_range(0..spans.len())])
                .collect();
            chosen.sort_unstable();
            chosen.dedup();
            let mut t = text.clone();
            // Replace from the end so earlier spans keep their offsets.
            for &(a, b) in chosen.iter().rev() {
                t.replace_range(a..b, VALUES[rng.gen_range(0..VALUES.len())]);
            }
            cases += 1;
            // Most cases run on a small network, so that building is cheap.
            let shrink = rng.gen_bool(0.75);
            let r = std::panic::catch_unwind(|| {
                let path = Path::new("fuzz.toml");
                let Ok(mut raw) = parse(&t, path) else {
                    return (false, false);
                };
                if shrink {
                    raw.network.n_recurrent = raw.network.n_recurrent.min(10);
                }
                let Ok(cfg) = raw.check(path) else {
                    return (false, false);
                };
                let small = match cfg.network() {
                    NetworkPlan::TwoPopulation(s) => {
                        s.n_recurrent <= 20 && s.input_rows * s.input_cols <= 784
                    }
                    NetworkPlan::EdgeList { .. } => true,
                };
                let mut ok_built = false;
                if small {
                    if let Ok(net) = cfg.build_network() {
                        ok_built = crate::sim::Simulator::new(&net, cfg.run()).is_ok();
                    }
                }
                (true, ok_built)
            });
            match r {
                Ok((a, b)) => {
                    accepted += a as usize;
                    built += b as usize;
                }
                Err(_) => panics += 1,
            }
        }
    }
    eprintln!("config fuzz: {cases} cases, {accepted} accepted, {built} built, {panics} panics");
    assert_eq!(panics, 0, "{panics} panics in {cases} cases");
    assert!(
        accepted > 0 && accepted < cases,
        "accepted {accepted} of {cases}"
    );
}

#[test]
fn huge_and_tiny_numbers_print_short_in_messages() {
    let e = error_of(&replaced(
        "velocity_um_per_ms = 100.0",
        "velocity_um_per_ms = -1e300",
    ));
    assert!(e.contains("= -1e300:"), "{e}");
    assert_eq!(short_number("0.000000000000000015".into()), "1.5e-17");
    // Integers and ordinary numbers are kept as written.
    assert_eq!(
        short_number("18446744073709551615".into()),
        "18446744073709551615"
    );
    assert_eq!(short_number("2.5".into()), "2.5");
    let e = error_of(&replaced(
        "tortuosity = [1.0, 1.3]",
        "tortuosity = [1.0, 1.3, 2.0]",
    ));
    assert!(e.contains("tortuosity") && e.contains("exactly 2"), "{e}");
}

#[test]
fn no_plastic_weight_starts_outside_the_stdp_clip() {
    // Experiment 3 at N = 200 and at the --quick N = 50, and experiment 2:
    // the draw (inhibitory U(-7/3, 0) x sqrt(50/N)) reaches below w_min = -1,
    // so without the build-time clip some plastic weights start outside.
    let quick = replaced("n_recurrent = 200", "n_recurrent = 50");
    for (name, text) in [
        ("weights.toml", base()),
        ("weights.toml, N = 50", quick),
        (
            "stdp.toml",
            std::fs::read_to_string(shipped("stdp.toml")).unwrap(),
        ),
    ] {
        let cfg = parse(&text, Path::new(name))
            .and_then(|r| r.check(Path::new(name)))
            .unwrap();
        let p = *cfg.run().stdp().expect("STDP on");
        let net = cfg.build_network().unwrap();
        let plastic = net.plastic_edges();
        assert!(!plastic.is_empty(), "{name}: no plastic edges");
        let outside = |w: &[f32]| {
            plastic
                .iter()
                .filter(|&&e| {
                    let w = w[e as usize] as f64;
                    w < p.w_min() || w > p.w_max()
                })
                .count()
        };
        assert_eq!(outside(net.edge_weight()), 0, "{name}");
        // The drawn weights before the clip: the same network otherwise.
        let drawn = cfg
            .network()
            .build(cfg.seed(), cfg.plastic_edges())
            .unwrap();
        let n_out = outside(drawn.edge_weight());
        println!(
            "{name}: {n_out} of {} plastic weights drawn outside",
            plastic.len()
        );
        for e in 0..net.n_edges() {
            let (a, b) = (net.edge_weight()[e], drawn.edge_weight()[e]);
            if !net.edge_plastic()[e] || (b as f64 >= p.w_min() && b as f64 <= p.w_max()) {
                assert_eq!(
                    a, b,
                    "{name}: edge {e} changed but was in range or not plastic"
                );
            }
        }
        if name.starts_with("weights") {
            assert!(
                n_out > 0,
                "{name}: the draw no longer reaches outside the clip"
            );
        }
    }
}

#[test]
fn the_timing_codes_parse_and_latency_needs_its_window() {
    let e = error_of(&replaced("train = \"regular\"", "train = \"latency\""));
    assert!(e.contains("stimulus.latency_window_ms"), "{e}");
    assert!(e.contains("latency"), "{e}");
    let e = error_of(&replaced(
        "train = \"regular\"",
        "train = \"latency\"\nlatency_window_ms = -3.0",
    ));
    assert!(
        e.contains("stimulus.latency_window_ms") && e.contains("-3"),
        "{e}"
    );
    let ok = |text: &str| {
        parse(text, Path::new("t.toml"))
            .and_then(|r| r.check(Path::new("t.toml")))
            .unwrap()
    };
    let lat = ok(&replaced(
        "train = \"regular\"",
        "train = \"latency\"\nlatency_window_ms = 50.0",
    ));
    assert_eq!(lat.stimulus().train, crate::stimulus::TrainKind::Latency);
    assert_eq!(lat.stimulus().latency_window_ms, 50.0);
    let vol = ok(&replaced("train = \"regular\"", "train = \"volley\""));
    assert_eq!(vol.stimulus().train, crate::stimulus::TrainKind::Volley);
    // Unset, the key stays out of the canonical text, so no hash moves.
    let canonical = toml::to_string(&parse(&base(), Path::new("t.toml")).unwrap()).unwrap();
    assert!(!canonical.contains("latency_window_ms"), "{canonical}");
}

fn stdp_text() -> String {
    std::fs::read_to_string(shipped("stdp.toml")).unwrap()
}

fn checked(text: &str) -> ExperimentConfig {
    parse(text, Path::new("t.toml"))
        .and_then(|r| r.check(Path::new("t.toml")))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn homeostasis_is_read_defaulted_and_checked() {
    let off = checked(&stdp_text());
    assert!(off.homeostasis().is_none(), "absent = off");
    let on = checked(&format!(
        "{}\n[homeostasis]\nkind = \"threshold\"\nrate = 0.25\n",
        stdp_text()
    ));
    let h = on.homeostasis().unwrap();
    assert_eq!((h.kind(), h.rate()), (HomeostasisKind::Threshold, 0.25));
    let default = checked(&format!("{}\n[homeostasis]\n", stdp_text()));
    let h = default.homeostasis().unwrap();
    assert_eq!((h.kind(), h.rate()), (HomeostasisKind::Threshold, 0.1));
    assert_ne!(on.hash(), off.hash(), "the section is part of the hash");
    for bad in ["0.0", "-0.1", "nan", "inf"] {
        let e = error_of(&format!("{}\n[homeostasis]\nrate = {bad}\n", stdp_text()));
        assert!(
            e.starts_with("test.toml: homeostasis.rate = ") && e.contains("> 0"),
            "{bad}: {e}"
        );
    }
    let e = error_of(&format!(
        "{}\n[homeostasis]\nkind = \"scaling\"\n",
        stdp_text()
    ));
    assert!(e.contains("threshold"), "{e}");
    let e = error_of(&format!("{}\n[homeostasis]\neta = 0.1\n", stdp_text()));
    assert!(e.contains("eta"), "{e}");
    // It acts while STDP learns: refused without STDP.
    let paths = std::fs::read_to_string(shipped("paths.toml")).unwrap();
    let e = error_of(&format!("{paths}\n[homeostasis]\n"));
    assert!(
        e.starts_with("test.toml: homeostasis = (set)") && e.contains("stdp.enabled"),
        "{e}"
    );
    // Other uses refuse it, naming the file and the section.
    let e = on
        .refuse_homeostasis(Path::new("x.toml"), "experiment 1")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("x.toml: homeostasis = (set)") && e.contains("experiment 1"),
        "{e}"
    );
    assert!(off.refuse_homeostasis(Path::new("x.toml"), "x").is_ok());
}

#[test]
fn configs_without_homeostasis_keep_their_hash() {
    // Unset, the section stays out of the canonical text; the hash of the
    // shipped stdp.toml is the one it had before the section existed.
    let canonical = toml::to_string(&parse(&stdp_text(), Path::new("t")).unwrap()).unwrap();
    assert!(!canonical.contains("homeostasis"), "{canonical}");
    assert_eq!(
        checked(&stdp_text()).hash(),
        "cc41ae732d902529ce8149bf89156f71068bbdc27f0f8929837560f76c9e62bc",
        "configs/stdp.toml's hash moved"
    );
}
