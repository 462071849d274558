//! Error types shared by the library. Each stage has its own error enum in its
//! module; this file holds the ones that cross stage boundaries.
