//! The one normal sampler of `eval` (random projection, PCA test matrix), so
//! every Gaussian draw in the evaluation stage follows the same recipe without a
//! `rand_distr` dependency: Box–Muller on two uniforms, `u1` in (0, 1] so the
//! logarithm stays finite.

use rand::Rng;

/// Radius and angle of one Box–Muller draw (consumes two `f64` uniforms).
fn box_muller<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    ((-2.0 * u1.ln()).sqrt(), std::f64::consts::TAU * u2)
}

/// One standard normal sample (the cosine half of a Box–Muller pair; the sine
/// half is dropped, so each sample consumes two uniforms).
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let (rad, th) = box_muller(rng);
    rad * th.cos()
}

/// Two independent standard normal samples from one Box–Muller draw (cosine, sine).
pub(crate) fn standard_normal_pair<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    let (rad, th) = box_muller(rng);
    (rad * th.cos(), rad * th.sin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn pair_starts_with_the_single_sample() {
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let (c, _) = standard_normal_pair(&mut a);
            assert_eq!(c.to_bits(), standard_normal(&mut b).to_bits());
        }
    }

    #[test]
    fn moments_are_standard() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let v: Vec<f64> = (0..20_000)
            .flat_map(|_| {
                let (a, b) = standard_normal_pair(&mut rng);
                [a, b]
            })
            .collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }
}
