//! network (stub)
