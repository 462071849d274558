//! eval (stub)
