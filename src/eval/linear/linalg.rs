//! Dense linear algebra of the linear readouts: a blocked Cholesky factorisation
//! and its triangular solves (the ridge's closed forms), and an f32 dot product
//! (the SVM's inner loop). Row-major `&[f64]` buffers, no allocation per call
//! beyond the trailing-update panel.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayViewMut2};
use rayon::prelude::*;

use crate::eval::EvalError;

/// Block size of the Cholesky factorisation (trailing updates go through dgemm).
const CHOL_BLOCK: usize = 128;

/// In-place blocked Cholesky of a symmetric positive definite n x n row-major
/// matrix (lower triangle read and overwritten with L). Panels are solved row
/// by row; the trailing update `A22 -= L21 L21^T` (lower part only) is dgemm.
pub(crate) fn cholesky(a: &mut [f64], n: usize) -> Result<(), EvalError> {
    for k0 in (0..n).step_by(CHOL_BLOCK) {
        let k1 = (k0 + CHOL_BLOCK).min(n);
        factor_diagonal_block(a, n, k0, k1)?;
        if k1 == n {
            break;
        }
        let (top, below) = a.split_at_mut(k1 * n);
        solve_panel(&top[k0 * n..], below, n, k0, k1);
        trailing_update(below, n, k0, k1);
    }
    Ok(())
}

/// Unblocked Cholesky of the diagonal block `k0..k1` (earlier blocks already applied).
fn factor_diagonal_block(a: &mut [f64], n: usize, k0: usize, k1: usize) -> Result<(), EvalError> {
    for j in k0..k1 {
        let mut d = a[j * n + j];
        for t in k0..j {
            d -= a[j * n + t] * a[j * n + t];
        }
        if d.is_nan() || d <= 0.0 || d.is_infinite() {
            return Err(EvalError::NotPositiveDefinite(j));
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..k1 {
            let mut v = a[i * n + j];
            for t in k0..j {
                v -= a[i * n + t] * a[j * n + t];
            }
            a[i * n + j] = v / d;
        }
    }
    Ok(())
}

/// Panel: the rows below the diagonal block solve `x L11^T = a` (`l11` starts at row k0).
fn solve_panel(l11: &[f64], below: &mut [f64], n: usize, k0: usize, k1: usize) {
    below.par_chunks_mut(n).for_each(|row| {
        for j in k0..k1 {
            let mut v = row[j];
            for t in k0..j {
                v -= row[t] * l11[(j - k0) * n + t];
            }
            row[j] = v / l11[(j - k0) * n + j];
        }
    });
}

/// `A22 -= L21 L21^T` on the lower part, in parallel chunks of CHOL_BLOCK rows.
fn trailing_update(below: &mut [f64], n: usize, k0: usize, k1: usize) {
    let nb = n - k1;
    let panel = Array2::from_shape_fn((nb, k1 - k0), |(i, t)| below[i * n + k0 + t]);
    below
        .par_chunks_mut(CHOL_BLOCK * n)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let r0 = ci * CHOL_BLOCK;
            let h = chunk.len() / n;
            let mut out = ArrayViewMut2::from_shape((h, n), chunk).expect("chunk shape");
            let mut out = out.slice_mut(s![.., k1..k1 + r0 + h]);
            let p = panel.slice(s![r0..r0 + h, ..]);
            let q = panel.slice(s![..r0 + h, ..]);
            general_mat_mul(-1.0, &p, &q.t(), 1.0, &mut out);
        });
}

/// Solve `L L^T X = B` in place (`b` is n x m row-major).
pub(crate) fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    for i in 0..n {
        for t in 0..i {
            let f = l[i * n + t];
            if f != 0.0 {
                for c in 0..m {
                    b[i * m + c] -= f * b[t * m + c];
                }
            }
        }
        for c in 0..m {
            b[i * m + c] /= l[i * n + i];
        }
    }
    for i in (0..n).rev() {
        for c in 0..m {
            b[i * m + c] /= l[i * n + i];
        }
        for t in 0..i {
            let f = l[i * n + t];
            if f != 0.0 {
                for c in 0..m {
                    b[t * m + c] -= f * b[i * m + c];
                }
            }
        }
    }
}

/// f32 dot product with 8 independent accumulators (lets the compiler vectorise;
/// the summation order is fixed, so results do not depend on the target).
pub(crate) fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (u, v) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += u[l] * v[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (u, v) in ra.iter().zip(rb) {
        s += u * v;
    }
    s
}
