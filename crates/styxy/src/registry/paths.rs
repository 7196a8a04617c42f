//! Where the registry lives: `--registry`, else `$STYXY_HOME`, else the XDG config dir.

use std::path::{Path, PathBuf};

use etcetera::BaseStrategy;

use crate::error::{Error, Result, StoreError};

/// The environment variable that overrides the registry directory.
pub const HOME_ENV: &str = "STYXY_HOME";

/// The registry directory: `explicit` if given, else `$STYXY_HOME` if set and non-empty,
/// else `$XDG_CONFIG_HOME/styxy` (`~/.config/styxy`), on every OS.
pub fn registry_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(home) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let xdg = etcetera::base_strategy::Xdg::new().map_err(|_| Error::from(StoreError::NoHome))?;
    Ok(xdg.config_dir().join("styxy"))
}
