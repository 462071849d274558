//! record (stub)
