//! Feature transforms applied before a readout: raw pixels to f32, the seeded
//! random projection of the no-dynamics control, the random ReLU features and
//! rate products of the nonlinear no-dynamics controls, and row-wise L2
//! normalisation.

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rayon::prelude::*;

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

/// Fixed row-chunk height of the feature products: the products of a chunk do
/// not depend on how many threads share the chunks, so neither do the features.
const FEATURE_ROW_CHUNK: usize = 256;

/// `x . R / sqrt(d)` with `R ~ N(0, 1)` (d x dim, from `rng`), in fixed row
/// chunks (parallel, thread-count independent).
fn gaussian_projection(
    x: ArrayView2<f32>,
    dim: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Array2<f32> {
    let d = x.ncols();
    let total = d * dim;
    let mut r = Vec::with_capacity(total + 1);
    while r.len() < total {
        let (a, b) = standard_normal_pair(rng);
        r.push(a as f32);
        r.push(b as f32);
    }
    r.truncate(total);
    let r = Array2::from_shape_vec((d, dim), r).expect("shape matches length");
    let scale = 1.0 / (d.max(1) as f32).sqrt();
    let n = x.nrows();
    let mut out = vec![0f32; n * dim];
    out.par_chunks_mut((FEATURE_ROW_CHUNK * dim).max(1))
        .enumerate()
        .for_each(|(ci, chunk)| {
            let r0 = ci * FEATURE_ROW_CHUNK;
            let h = chunk.len() / dim.max(1);
            let xs = x.slice(ndarray::s![r0..r0 + h, ..]);
            let mut o = ndarray::ArrayViewMut2::from_shape((h, dim), chunk).expect("chunk shape");
            ndarray::linalg::general_mat_mul(scale, &xs, &r, 0.0, &mut o);
        });
    Array2::from_shape_vec((n, dim), out).expect("output shape")
}

/// The random nonlinear features of the extreme-learning-machine baseline:
/// `ReLU(x . R / sqrt(d) + b)`, `R ~ N(0, 1)` (d x dim) and `b ~ N(0, s^2)`
/// (dim), both from `ChaCha8Rng(seed)` (R first, then b, Box-Muller pairs).
/// `s^2 = mean over rows of |x|^2 / d` is the variance of a projected
/// coordinate, so each feature's ReLU cuts at a random level within the
/// spread of its inputs, whatever the scale of `x` (it reads the rows'
/// norms only, never a label). Seeded and independent of the thread count.
pub fn random_features(x: ArrayView2<f32>, dim: usize, seed: u64) -> Array2<f32> {
    let (n, d) = x.dim();
    if dim == 0 || d == 0 {
        return Array2::zeros((n, dim));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = gaussian_projection(x, dim, &mut rng);
    let mean_sq = x
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
        .sum::<f64>()
        / n.max(1) as f64;
    let s = (mean_sq / d as f64).sqrt();
    let mut b = Vec::with_capacity(dim + 1);
    while b.len() < dim {
        let (u, v) = standard_normal_pair(&mut rng);
        b.push((u * s) as f32);
        b.push((v * s) as f32);
    }
    b.truncate(dim);
    out.axis_iter_mut(Axis(0)).for_each(|mut row| {
        row.iter_mut()
            .zip(&b)
            .for_each(|(v, &bj)| *v = (*v + bj).max(0.0))
    });
    out
}

/// The rate-product control: `n_nodes` random ReLU features `f` of `x`
/// ([`random_features`] with `seed`), then every product `f_i f_j` of an
/// ordered pair `i != j` (i major, j minor): `n_nodes (n_nodes - 1)` columns,
/// like the weight changes of an all-to-all layer of `n_nodes` nodes. It is the
/// spike-free model of depression-dominant STDP, whose change of edge `i -> j`
/// is to first order a product of its two end nodes' rates.
pub fn rate_product(x: ArrayView2<f32>, n_nodes: usize, seed: u64) -> Array2<f32> {
    let f = random_features(x, n_nodes, seed);
    let n = x.nrows();
    let dim = n_nodes * n_nodes.saturating_sub(1);
    let mut out = vec![0f32; n * dim];
    let f = f.as_standard_layout();
    let fs = f.as_slice().expect("standard layout");
    out.par_chunks_mut(dim.max(1))
        .zip(fs.par_chunks(n_nodes.max(1)))
        .for_each(|(o, fr)| {
            let mut k = 0;
            for i in 0..n_nodes {
                for j in 0..n_nodes {
                    if i != j {
                        o[k] = fr[i] * fr[j];
                        k += 1;
                    }
                }
            }
        });
    Array2::from_shape_vec((n, dim), out).expect("output shape")
}
