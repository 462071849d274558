//! Which images a run uses: a dataset (IDX files, or the built-in digits)
//! and an optional limit, drawn the same way by every command.

use super::PipelineError;
use crate::dataset::{stratified_subset_indices, ImageSet};
use std::path::{Path, PathBuf};

/// Seed of the stratified draw behind a limit: fixed, so `--limit N` picks
/// the same images in every command and experiment.
pub const LIMIT_SEED: u64 = 0;

/// A dataset and how much of it to use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DataSpec {
    /// IDX images and labels files (default: the built-in MNIST-10k).
    pub files: Option<(PathBuf, PathBuf)>,
    /// Use `limit` images: a seeded stratified draw, kept in file order.
    pub limit: Option<usize>,
}

/// The images of `spec`, and with a limit the indices kept. The file must
/// be a usable reference set (images, every class `0..K` present; see
/// [`ImageSet::check_reference`]), and a limit must leave some images.
pub fn load_images(spec: &DataSpec) -> Result<(ImageSet, Option<Vec<usize>>), PipelineError> {
    let set = match &spec.files {
        Some((i, l)) => ImageSet::load(i, l)?,
        None => ImageSet::builtin()?,
    };
    set.check_reference()?;
    if spec.limit == Some(0) {
        return Err(PipelineError::Other(format!(
            "{}: a limit of 0 images leaves nothing to use",
            set.images_path.display()
        )));
    }
    Ok(match spec.limit {
        Some(n) if n < set.len() => {
            let idx = stratified_subset_indices(&set.labels, n, LIMIT_SEED);
            (set.subset(&idx), Some(idx))
        }
        _ => (set, None),
    })
}

/// Loads a held-out query set for `reference`: its labels must be classes of
/// the reference (it may lack some; see [`ImageSet::check_queries`]).
pub fn load_query(
    images: &Path,
    labels: &Path,
    reference: &ImageSet,
) -> Result<ImageSet, PipelineError> {
    let query = ImageSet::load(images, labels)?;
    query.check_queries(reference)?;
    Ok(query)
}
