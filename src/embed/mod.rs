//! embed (stub)
