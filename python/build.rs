// The test binary links libpython; without this rpath it can pick up the
// system's instead of the interpreter's that pyo3 was configured for.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
