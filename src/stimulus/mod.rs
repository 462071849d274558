//! stimulus (stub)
