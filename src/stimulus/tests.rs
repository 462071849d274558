use super::*;

/// Stimulus parameters and one refractory period R shared by every input
/// node (the tests below vary R as a single number).
#[derive(Clone, Debug)]
struct P {
    s: StimulusParams,
    input_refractory_period_ms: f64,
}

impl std::ops::Deref for P {
    type Target = StimulusParams;
    fn deref(&self) -> &StimulusParams {
        &self.s
    }
}

impl std::ops::DerefMut for P {
    fn deref_mut(&mut self) -> &mut StimulusParams {
        &mut self.s
    }
}

fn params(train: TrainKind) -> P {
    P {
        s: StimulusParams {
            intensity_threshold: 0.5,
            duration_ms: 600.0,
            max_rate_hz: 100.0,
            train,
            latency_window_ms: 40.0,
        },
        input_refractory_period_ms: 0.0,
    }
}

fn encode_image(pixels: &[u8], p: &P, seed: u64) -> Vec<ExternalActivation> {
    let r = vec![p.input_refractory_period_ms; pixels.len()];
    super::encode_image(pixels, &p.s, &r, seed)
}

fn expected_spike_count(pixels: &[u8], p: &P) -> f64 {
    let r = vec![p.input_refractory_period_ms; pixels.len()];
    super::expected_spike_count(pixels, &p.s, &r)
}

/// A 28 x 28 test image with many distinct intensities, some below threshold.
fn gradient_image() -> Vec<u8> {
    (0..784).map(|i| ((i * 7) % 256) as u8).collect()
}

fn times_of(train: &[ExternalActivation], node: u32) -> Vec<f64> {
    train
        .iter()
        .filter(|a| a.node == node)
        .map(|a| a.time_ms)
        .collect()
}

fn assert_sorted(train: &[ExternalActivation]) {
    assert!(train
        .windows(2)
        .all(|w| (w[0].time_ms, w[0].node) < (w[1].time_ms, w[1].node)));
}

/// Least interval between two spikes of the same node (infinity if none).
fn min_isi(train: &[ExternalActivation], n_nodes: u32) -> f64 {
    (0..n_nodes)
        .map(|n| {
            let t = times_of(train, n);
            t.windows(2)
                .map(|w| w[1] - w[0])
                .fold(f64::INFINITY, f64::min)
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn full_pixel_regular_train() {
    let train = encode_image(&[255], &params(TrainKind::Regular), 0);
    let expected: Vec<f64> = (0..60).map(|k| 5.0 + 10.0 * k as f64).collect();
    assert_eq!(times_of(&train, 0), expected);
    assert_eq!(train.len(), 60);
    assert_eq!(
        expected_spike_count(&[255], &params(TrainKind::Regular)),
        60.0
    );
}

#[test]
fn regular_ignores_seed_and_scales_with_intensity() {
    let p = params(TrainKind::Regular);
    // 153/255 = 0.6 -> 60 Hz -> period 16.67 ms, phase 8.33 ms: 36 spikes in 600 ms.
    let a = encode_image(&[153], &p, 1);
    assert_eq!(a, encode_image(&[153], &p, 2));
    assert_eq!(a.len(), 36);
    assert!((a[0].time_ms - 1000.0 / 60.0 / 2.0).abs() < 1e-12);
}

#[test]
fn below_threshold_gives_nothing() {
    for train in [TrainKind::Regular, TrainKind::Poisson] {
        let mut p = params(train);
        // 127/255 < 0.5; 0 never drives; threshold is strict.
        assert!(encode_image(&[0, 127, 0], &p, 3).is_empty());
        p.intensity_threshold = 1.0;
        assert!(encode_image(&[255; 10], &p, 3).is_empty());
        p.intensity_threshold = 0.0;
        assert!(encode_image(&[0; 10], &p, 3).is_empty());
        assert_eq!(expected_spike_count(&[0; 10], &p), 0.0);
    }
}

#[test]
fn node_is_pixel_index() {
    let mut px = vec![0u8; 784];
    px[300] = 255;
    px[783] = 200;
    let train = encode_image(&px, &params(TrainKind::Regular), 0);
    assert!(train.iter().all(|a| a.node == 300 || a.node == 783));
    assert_eq!(times_of(&train, 300).len(), 60);
    assert!(!times_of(&train, 783).is_empty());
}

#[test]
fn refractory_period_caps_regular_rate() {
    let mut p = params(TrainKind::Regular);
    p.max_rate_hz = 1000.0; // period 1 ms, capped to 3 ms
    p.input_refractory_period_ms = 3.0;
    let t = times_of(&encode_image(&[255], &p, 0), 0);
    assert_eq!(t.len(), 200); // 1.5, 4.5, ..., 598.5
    assert!((t[0] - 1.5).abs() < 1e-12);
    assert!(t
        .windows(2)
        .all(|w| w[1] - w[0] >= 3.0 && w[1] >= w[0] + 3.0));
    // A period that does not divide evenly: rounding must never bring two spikes
    // inside R.
    p.input_refractory_period_ms = 0.1;
    p.max_rate_hz = 1e5;
    let t = times_of(&encode_image(&[255], &p, 0), 0);
    assert!(t
        .windows(2)
        .all(|w| w[1] - w[0] >= 0.1 && w[1] >= w[0] + 0.1));
    assert_eq!(t.len(), 6000);
}

#[test]
fn poisson_mean_count_matches_rate() {
    let p = params(TrainKind::Poisson);
    let seeds = 2000u64;
    let counts: Vec<f64> = (0..seeds)
        .map(|s| encode_image(&[255], &p, s).len() as f64)
        .collect();
    let mean = counts.iter().sum::<f64>() / seeds as f64;
    // Poisson: variance = mean = 60; standard error of the mean = sqrt(60/2000).
    let se = (60.0 / seeds as f64).sqrt();
    assert!((mean - 60.0).abs() < 4.0 * se, "mean {mean}, se {se}");
    assert_eq!(expected_spike_count(&[255], &p), 60.0);
}

#[test]
fn poisson_dead_time() {
    let mut p = params(TrainKind::Poisson);
    p.input_refractory_period_ms = 5.0;
    let seeds = 2000u64;
    let mut total = 0usize;
    for s in 0..seeds {
        let train = encode_image(&[255, 255], &p, s);
        assert!(min_isi(&train, 2) >= 5.0, "seed {s}");
        total += train.len();
    }
    // Dead-time process: r D / (1 + r R) = 0.1 * 600 / 1.5 = 40 per pixel. The
    // renewal correction for a start outside dead time is about +0.06; the
    // standard error of the mean is about 0.07 here (two pixels).
    let mean = total as f64 / (2 * seeds) as f64;
    assert_eq!(expected_spike_count(&[255], &p), 40.0);
    assert!((mean - 40.0).abs() < 0.4, "mean {mean}");
}

#[test]
fn poisson_seeded() {
    let p = params(TrainKind::Poisson);
    let img = gradient_image();
    let a = encode_image(&img, &p, 42);
    assert_eq!(a, encode_image(&img, &p, 42), "same seed, same train");
    assert_ne!(
        a,
        encode_image(&img, &p, 43),
        "different seed, different train"
    );
    assert!(a.iter().all(|x| x.time_ms >= 0.0 && x.time_ms < 600.0));
}

#[test]
fn output_sorted_by_time_then_node() {
    let img = gradient_image();
    for train in [TrainKind::Regular, TrainKind::Poisson] {
        let mut p = params(train);
        p.intensity_threshold = 0.1;
        p.input_refractory_period_ms = 2.0;
        let out = encode_image(&img, &p, 9);
        assert!(out.len() > 1000);
        assert_sorted(&out);
        assert!(min_isi(&out, 784) >= 2.0);
    }
    // Equal intensities fire together: ties are broken by node.
    let out = encode_image(&[255, 255, 255], &params(TrainKind::Regular), 0);
    assert_eq!(
        out[..3].iter().map(|a| a.node).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_sorted(&out);
}

#[test]
fn regular_expected_count_is_exact() {
    let mut p = params(TrainKind::Regular);
    p.intensity_threshold = 0.05;
    p.input_refractory_period_ms = 12.0;
    let img = gradient_image();
    let n = encode_image(&img, &p, 0).len();
    assert_eq!(expected_spike_count(&img, &p), n as f64);
}

#[test]
fn degenerate_params_give_no_spikes() {
    for train in [TrainKind::Regular, TrainKind::Poisson] {
        for (dur, rate) in [
            (0.0, 100.0),
            (-5.0, 100.0),
            (f64::NAN, 100.0),
            (600.0, 0.0),
            (600.0, f64::NAN),
        ] {
            let mut p = params(train);
            p.duration_ms = dur;
            p.max_rate_hz = rate;
            assert!(
                encode_image(&[255], &p, 0).is_empty(),
                "{train:?} {dur} {rate}"
            );
        }
        let mut p = params(train);
        p.max_rate_hz = f64::INFINITY; // no refractory cap: unusable
        assert!(encode_image(&[255], &p, 0).is_empty());
    }
}

#[test]
fn train_kind_serde_names() {
    assert_eq!(TrainKind::default(), TrainKind::Regular);
    assert_eq!(
        serde_json::to_string(&TrainKind::Poisson).unwrap(),
        "\"poisson\""
    );
    let k: TrainKind = serde_json::from_str("\"regular\"").unwrap();
    assert_eq!(k, TrainKind::Regular);
}

#[test]
fn each_input_node_has_its_own_refractory_cap() {
    let mut p = params(TrainKind::Regular);
    p.max_rate_hz = 1000.0; // period 1 ms
                            // Node 0 capped at R = 5 ms (200 Hz), node 1 uncapped, node 2 past the
                            // end of the list of periods: no cap.
    let train = super::encode_image(&[255, 255, 255], &p.s, &[5.0, 0.0], 0);
    assert_eq!(times_of(&train, 0).len(), 120);
    assert_eq!(times_of(&train, 1).len(), 600);
    assert_eq!(times_of(&train, 2).len(), 600);
    assert_eq!(
        super::expected_spike_count(&[255, 255, 255], &p.s, &[5.0, 0.0]),
        1320.0
    );
}

#[test]
fn timing_codes_give_the_spike_times_of_their_formulas() {
    // Threshold 0.5: pixels 0 and 100 do not drive; 255, 204 and 153 do.
    let px = [0u8, 255, 100, 204, 153];
    let lat = encode_image(&px, &params(TrainKind::Latency), 0);
    let expect = |p: u8| 40.0 * (1.0 - f64::from(p) / 255.0) + 0.0;
    let got: Vec<(u32, f64)> = lat.iter().map(|a| (a.node, a.time_ms)).collect();
    // Sorted by time: brightest first.
    assert_eq!(got, vec![(1, 0.0), (3, expect(204)), (4, expect(153))]);
    assert!(got[0].1.is_sign_positive());
    assert_eq!(expected_spike_count(&px, &params(TrainKind::Latency)), 3.0);

    let vol = encode_image(&px, &params(TrainKind::Volley), 0);
    let got: Vec<(u32, f64)> = vol.iter().map(|a| (a.node, a.time_ms)).collect();
    assert_eq!(got, vec![(1, 0.0), (3, 0.0), (4, 0.0)]);

    // A window longer than the stimulus drops the spikes that fall after it.
    let mut p = params(TrainKind::Latency);
    p.latency_window_ms = 1000.0;
    p.duration_ms = 300.0;
    let late = encode_image(&px, &p, 0);
    // 255 -> 0 ms, 204 -> 200 ms, 153 -> 400 ms (dropped).
    assert_eq!(late.len(), 2);
    assert_eq!(expected_spike_count(&px, &p), 2.0);
}
