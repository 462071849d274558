//! The configs shipped in `configs/`, compiled in so every command and the
//! library work from any directory: the one registry of built-in configs.

use super::{parse, ConfigError, RawConfig};
use std::path::{Path, PathBuf};

/// (name, TOML text) of each shipped config.
pub const BUILTIN_CONFIGS: &[(&str, &str)] = &[
    ("weights", include_str!("../../configs/weights.toml")),
    ("paths", include_str!("../../configs/paths.toml")),
    ("stdp", include_str!("../../configs/stdp.toml")),
];

/// The names of the built-in configs.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_CONFIGS.iter().map(|(n, _)| *n).collect()
}

/// The text of built-in config `name`, if there is one.
pub fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN_CONFIGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Reads a config given as a file path or a built-in name (a file wins);
/// returns the raw config and the path to name in messages.
pub fn read_raw(spec: &str) -> Result<(RawConfig, PathBuf), ConfigError> {
    let path = Path::new(spec);
    if path.exists() {
        let text = super::read_text(path)?;
        return Ok((parse(&text, path)?, path.to_path_buf()));
    }
    if let Some(text) = builtin_text(spec) {
        let p = PathBuf::from(format!("configs/{spec}.toml (built-in)"));
        return Ok((parse(text, &p)?, p));
    }
    Err(ConfigError::Unknown {
        spec: spec.to_string(),
        names: builtin_names().join(", "),
    })
}
