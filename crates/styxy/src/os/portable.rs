//! What std alone answers: the facts of a build without `tool` on macOS and Windows (what a
//! build.rs compiles: no listing of listening sockets, so a bind tells whether a port is
//! taken, not by whom; no owners, start times or locks; IANA's ephemeral range), the files
//! of a system without modes or owners (Windows), and `run`'s start of cargo where there is
//! no trampoline (everywhere but Linux).

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::path::Path;

use super::{DirTrust, Socket};

pub fn ephemeral_range() -> Option<(u16, u16)> {
    Some((49152, 65535))
}

pub fn listening_sockets() -> Option<Vec<Socket>> {
    None
}

pub fn socket_owners(_ports_by_id: &HashMap<u64, u16>) -> Vec<(u16, u32)> {
    Vec::new()
}

pub fn command_args(_pid: u32) -> Vec<String> {
    Vec::new()
}

pub fn lock_holder(_file: &File) -> Option<u32> {
    None
}

pub fn process_start_time(_pid: u32) -> Option<u64> {
    None
}

pub fn is_stopped(_pid: u32) -> bool {
    false
}

/// As it is: only Linux starts cargo through a trampoline.
pub fn tied_command(
    _trampoline: &str,
    program: OsString,
    args: Vec<OsString>,
) -> (OsString, Vec<OsString>) {
    (program, args)
}

/// The trampoline is Linux's; elsewhere `run` starts cargo itself.
#[cfg(feature = "tool")]
pub fn exec_tied_to(
    _parent: u32,
    _program: &std::ffi::OsStr,
    _args: &[OsString],
    _warn: impl FnOnce(super::TieError),
) -> super::TieError {
    super::TieError::Exec(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no trampoline on this system: `cargo styxy run` starts cargo itself",
    ))
}

pub fn user_name() -> Option<String> {
    None
}

pub fn private_dir(_builder: &mut DirBuilder) {}

pub fn private_file(_options: &mut OpenOptions) {}

pub fn mode(_m: &fs::Metadata) -> u32 {
    0o644
}

pub fn set_mode(_file: &File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

pub fn file_id(_m: &fs::Metadata) -> u64 {
    0
}

pub fn special_kind(_t: fs::FileType) -> Option<&'static str> {
    None
}

pub fn dir_trust(_dir: &Path, _m: &fs::Metadata) -> std::io::Result<DirTrust> {
    Ok(DirTrust::Private)
}

/// Windows has no FIFOs among files (pipes live in their own namespace); a symlink is
/// opened as itself (`FILE_FLAG_OPEN_REPARSE_POINT`) to be refused.
pub fn open_without_waiting(
    path: &Path,
    options: OpenOptions,
    links: super::Links,
) -> std::io::Result<File> {
    #[cfg(windows)]
    let mut options = options;
    #[cfg(windows)]
    if links == super::Links::Refuse {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    #[cfg(not(windows))]
    let _ = links;
    options.open(path)
}

/// A link opened as itself is refused by its file type, not by the open.
pub fn is_link_refusal(_e: &std::io::Error) -> bool {
    false
}

/// No FIFOs among files.
pub fn is_fifo_refusal(_e: &std::io::Error) -> bool {
    false
}

/// Windows refuses to replace a file that another program holds open without delete
/// sharing (`ERROR_SHARING_VIOLATION`, 32), or whose deleted name lingers until its last
/// handle closes (`ERROR_ACCESS_DENIED`, 5): both pass once the reader lets go.
pub fn rename_may_pass_later(e: &std::io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(5 | 32))
}

/// A no-op: Windows has no directory sync (a rename is durable with the file system's
/// journal).
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1)
}
