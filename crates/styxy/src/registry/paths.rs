//! Where the registry lives: `--registry`, else `$STYXY_HOME`, else the platform's config
//! dir.

use std::path::{Path, PathBuf};

use etcetera::BaseStrategy;

use crate::error::{Error, Result, StoreError};

/// The environment variable that overrides the registry directory.
pub const HOME_ENV: &str = "STYXY_HOME";

/// The registry directory: `explicit` if given, else `$STYXY_HOME` if set and non-empty,
/// else `styxy` in the config dir of etcetera's base strategy: `$XDG_CONFIG_HOME/styxy`
/// (`~/.config/styxy`) on Linux and macOS, as command-line tools do there, and
/// `%APPDATA%\styxy` on Windows.
pub fn registry_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(home) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let base = etcetera::choose_base_strategy().map_err(|_| Error::from(StoreError::NoHome))?;
    Ok(base.config_dir().join("styxy"))
}
