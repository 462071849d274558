//! Reference/query splits.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{EvalError, Split};

/// Repeated random split: repeat `r` shuffles `0..n` with `ChaCha8Rng` seeded from
/// `seed` on stream `r` (so repeats are independent and each one reproducible on
/// its own), takes the first `n_query` as queries and the next `n_reference` as
/// reference. Disjoint and reproducible.
pub fn random_splits(
    n: usize,
    n_reference: usize,
    n_query: usize,
    repeats: usize,
    seed: u64,
) -> Result<Vec<Split>, EvalError> {
    if n_reference == 0 || n_query == 0 || n_reference.checked_add(n_query).is_none_or(|t| t > n) {
        return Err(EvalError::BadSplitSizes {
            n,
            n_reference,
            n_query,
        });
    }
    if repeats == 0 {
        return Err(EvalError::ZeroRepeats);
    }
    Ok((0..repeats)
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(r as u64);
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut rng);
            Split {
                query: perm[..n_query].to_vec(),
                reference: perm[n_query..n_query + n_reference].to_vec(),
            }
        })
        .collect())
}

/// Held-out split: rows `0..n_reference` are the reference, the next `n_query`
/// rows the queries (the caller stacks the two sets in that order).
pub fn held_out_split(n_reference: usize, n_query: usize) -> Split {
    Split {
        reference: (0..n_reference).collect(),
        query: (n_reference..n_reference + n_query).collect(),
    }
}
