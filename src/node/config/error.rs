//! What a setting that cannot work says: which one, where it came from, and what to do.

use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// A setting that cannot work: which one, where it came from, and what to do.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid `{field}` = {value:?}: {fix}")]
    Invalid { field: &'static str, value: String, fix: String },
    #[error("`{field}` is missing: {fix}")]
    Missing { field: &'static str, fix: String },
}

pub(super) fn invalid(
    field: &'static str,
    value: impl fmt::Display,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid { field, value: value.to_string(), fix: fix.into() }
}
