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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random well-conditioned SPD n x n matrix, row-major, both triangles
    /// filled: `G G^T / n + I/2` with G uniform in [-1, 1).
    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Array2::from_shape_fn((n, n), |_| rng.gen_range(-1.0..1.0));
        let mut a = g.dot(&g.t()) / n as f64;
        for i in 0..n {
            a[[i, i]] += 0.5;
        }
        a.into_raw_vec_and_offset().0
    }

    /// Textbook Cholesky–Banachiewicz, unblocked, lower triangle of a fresh matrix.
    fn naive_cholesky(a: &[f64], n: usize) -> Vec<f64> {
        let mut l = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut s = a[i * n + j];
                for t in 0..j {
                    s -= l[i * n + t] * l[j * n + t];
                }
                l[i * n + j] = if i == j { s.sqrt() } else { s / l[j * n + j] };
            }
        }
        l
    }

    /// Textbook forward then back substitution, one right-hand side at a time.
    fn naive_solve(l: &[f64], n: usize, b: &[f64], m: usize) -> Vec<f64> {
        let mut x = b.to_vec();
        for c in 0..m {
            for i in 0..n {
                let mut s = x[i * m + c];
                for t in 0..i {
                    s -= l[i * n + t] * x[t * m + c];
                }
                x[i * m + c] = s / l[i * n + i];
            }
            for i in (0..n).rev() {
                let mut s = x[i * m + c];
                for t in i + 1..n {
                    s -= l[t * n + i] * x[t * m + c];
                }
                x[i * m + c] = s / l[i * n + i];
            }
        }
        x
    }

    /// Largest |a - b| over the lower triangle, relative to the largest |b| there.
    fn lower_rel_diff(a: &[f64], b: &[f64], n: usize) -> f64 {
        let (mut d, mut s) = (0f64, 0f64);
        for i in 0..n {
            for j in 0..=i {
                d = d.max((a[i * n + j] - b[i * n + j]).abs());
                s = s.max(b[i * n + j].abs());
            }
        }
        d / s
    }

    fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        d / b.iter().map(|y| y.abs()).fold(0.0, f64::max)
    }

    fn rhs(n: usize, m: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * m).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Sizes on both sides of the block edges of the factorisation and the solves.
    const SIZES: [usize; 14] = [1, 2, 3, 31, 32, 33, 127, 128, 129, 255, 256, 257, 600, 1000];

    #[test]
    fn cholesky_matches_textbook_factor() {
        for (s, &n) in SIZES.iter().enumerate() {
            let a = spd(n, s as u64);
            let mut l = a.clone();
            cholesky(&mut l, n).unwrap();
            let d = lower_rel_diff(&l, &naive_cholesky(&a, n), n);
            assert!(d < 1e-13, "n = {n}: relative difference {d:e}");
        }
    }

    #[test]
    fn cholesky_reads_the_lower_triangle_only() {
        let n = 300;
        let a = spd(n, 7);
        let mut lower = a.clone();
        for i in 0..n {
            for j in i + 1..n {
                lower[i * n + j] = f64::NAN;
            }
        }
        let (mut l1, mut l2) = (a.clone(), lower);
        cholesky(&mut l1, n).unwrap();
        cholesky(&mut l2, n).unwrap();
        for i in 0..n {
            for j in 0..=i {
                assert_eq!(
                    l1[i * n + j].to_bits(),
                    l2[i * n + j].to_bits(),
                    "({i}, {j})"
                );
            }
        }
    }

    #[test]
    fn cholesky_solve_matches_textbook_substitution() {
        for (s, &n) in SIZES.iter().enumerate() {
            for m in [1, 10, 33] {
                let mut l = spd(n, s as u64 + 100);
                cholesky(&mut l, n).unwrap();
                let b = rhs(n, m, s as u64 + 200);
                let mut x = b.clone();
                cholesky_solve(&l, n, &mut x, m);
                let d = rel_diff(&x, &naive_solve(&l, n, &b, m));
                assert!(d < 1e-12, "n = {n}, m = {m}: relative difference {d:e}");
            }
        }
    }

    #[test]
    fn cholesky_names_the_first_bad_pivot() {
        // Across a block edge, and a NaN.
        for (p, v) in [(0, -1.0), (300, -1.0), (300, 0.0), (513, f64::NAN)] {
            let n = 600;
            let mut a = vec![0f64; n * n];
            for i in 0..n {
                a[i * n + i] = 1.0;
            }
            a[p * n + p] = v;
            match cholesky(&mut a, n) {
                Err(EvalError::NotPositiveDefinite(j)) => assert_eq!(j, p),
                other => panic!("pivot {p}: {other:?}"),
            }
        }
    }

    fn with_threads<T: Send>(k: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build()
            .expect("thread pool")
            .install(f)
    }

    #[test]
    fn factor_and_solve_do_not_depend_on_the_thread_count() {
        for n in [257, 600, 1000] {
            let a = spd(n, n as u64);
            let b = rhs(n, 10, 1);
            let run = || {
                let mut l = a.clone();
                cholesky(&mut l, n).unwrap();
                let mut x = b.clone();
                cholesky_solve(&l, n, &mut x, 10);
                let lower: Vec<u64> = (0..n)
                    .flat_map(|i| (0..=i).map(move |j| (i, j)))
                    .map(|(i, j)| l[i * n + j].to_bits())
                    .collect();
                (lower, x.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            };
            let one = with_threads(1, run);
            for k in [2, 3] {
                assert!(with_threads(k, run) == one, "n = {n}, {k} threads");
            }
        }
    }

    /// CPU time of the whole process (every thread), in seconds.
    fn process_cpu_s() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the process CPU-time
        // clock exists on every Linux since 2.6.12.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime");
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }

    /// The speed of the factorisation and of the solve with 10 right-hand sides
    /// (the ridge's ten classes), per CPU second of the whole process (the
    /// machine is shared: wall time says little), by hand:
    /// `GEODYN_M=2000,6000 cargo test --release --lib -- --ignored --exact
    /// eval::linear::linalg::tests::timing_cholesky --nocapture`.
    #[test]
    #[ignore]
    fn timing_cholesky() {
        let sizes: Vec<usize> = std::env::var("GEODYN_M")
            .unwrap_or_else(|_| "2000,6000".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("GEODYN_M: sizes separated by commas")
            })
            .collect();
        for n in sizes {
            let a = spd(n, 5);
            let b = rhs(n, 10, 6);
            for rep in 0..3 {
                let mut l = a.clone();
                let (c0, w0) = (process_cpu_s(), std::time::Instant::now());
                cholesky(&mut l, n).unwrap();
                let (c1, w1) = (process_cpu_s(), std::time::Instant::now());
                let mut x = b.clone();
                cholesky_solve(&l, n, &mut x, 10);
                let c2 = process_cpu_s();
                let flop = (n as f64).powi(3) / 3.0;
                println!(
                    "m = {n} rep {rep}: cholesky {:.2} GFLOP/s per CPU s ({:.3} CPU s, {:.3} wall s); \
                     solve, 10 rhs: {:.3} CPU s",
                    flop / (c1 - c0) / 1e9,
                    c1 - c0,
                    (w1 - w0).as_secs_f64(),
                    c2 - c1,
                );
            }
        }
    }
}
