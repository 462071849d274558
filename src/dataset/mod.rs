//! dataset (stub)
