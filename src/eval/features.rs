//! Feature transforms applied before a readout: raw pixels to f32, the seeded
//! random projection of the no-dynamics control, and row-wise L2 normalisation.

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;

use super::rng::standard_normal_pair;
use super::EvalError;

/// Seeded Gaussian random projection to `dim` columns: `x . R / sqrt(dim)` with
/// `R ~ N(0, 1)` (d x dim, filled row by row from `ChaCha8Rng(seed)`, Box-Muller).
/// The no-dynamics control of equal size.
pub fn random_projection(x: ArrayView2<f32>, dim: usize, seed: u64) -> Array2<f32> {
    let d = x.ncols();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let total = d * dim;
    let mut r = Vec::with_capacity(total + 1);
    // Both halves of each Box-Muller pair are used; an odd total drops the last sine.
    while r.len() < total {
        let (a, b) = standard_normal_pair(&mut rng);
        r.push(a as f32);
        r.push(b as f32);
    }
    r.truncate(total);
    let r = Array2::from_shape_vec((d, dim), r).expect("shape matches length");
    if dim == 0 {
        return Array2::zeros((x.nrows(), 0));
    }
    let mut out = x.dot(&r);
    out.mapv_inplace(|v| v / (dim as f32).sqrt());
    out
}

/// Scales every row of `x` to unit Euclidean norm. The norm is accumulated in f64
/// (sums of thousands of f32 squares lose digits in f32); rows of norm 0 are left
/// as they are.
pub fn l2_normalize_rows(x: &mut Array2<f32>) {
    for mut row in x.axis_iter_mut(Axis(0)) {
        let n = row
            .iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt();
        if n > 0.0 {
            row.mapv_inplace(|v| (v as f64 / n) as f32);
        }
    }
}

/// Pixels (row-major, n x d bytes) to f32 in [0, 1].
///
/// # Panics
/// If `pixels.len() != n * d`; use [`try_pixels_to_f32`] for untrusted sizes.
pub fn pixels_to_f32(pixels: &[u8], n: usize, d: usize) -> Array2<f32> {
    try_pixels_to_f32(pixels, n, d).unwrap_or_else(|e| panic!("{e}"))
}

/// Checked [`pixels_to_f32`].
pub fn try_pixels_to_f32(pixels: &[u8], n: usize, d: usize) -> Result<Array2<f32>, EvalError> {
    if n.checked_mul(d) != Some(pixels.len()) {
        return Err(EvalError::PixelLength {
            len: pixels.len(),
            n,
            d,
        });
    }
    let v: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    Ok(Array2::from_shape_vec((n, d), v).expect("length checked"))
}
