//! The one door to the operating system: every question the tool asks the OS (which sockets
//! listen and who holds them, whether a process lives and when it started, the ephemeral
//! range, how a private file is made and synced, how `run` ties the bin to itself and passes
//! signals on) is a small function here, named for what it answers. The platform files
//! inside answer it: `linux.rs` (sock_diag, `/proc`), `macos.rs` (libproc, sysctl),
//! `windows.rs` (IP Helper, process times, job objects, the console), `unix.rs` (what every
//! Unix shares: modes, owners, signals, `exec`) and `portable.rs` (std alone: a build without
//! `tool`, files without modes). Nothing outside this folder names the OS; `unsafe` lives
//! only in `macos.rs` and `windows.rs`, each block with its `SAFETY:` comment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(all(target_os = "macos", feature = "tool"))]
mod macos;
#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(unix)]
mod unix;
#[cfg(all(windows, feature = "tool"))]
mod windows;

// Facts: what the system says about sockets and processes.
#[cfg(target_os = "linux")]
use linux as facts;
#[cfg(all(target_os = "macos", feature = "tool"))]
use macos as facts;
#[cfg(not(any(
    target_os = "linux",
    all(target_os = "macos", feature = "tool"),
    all(windows, feature = "tool")
)))]
use portable as facts;
#[cfg(all(windows, feature = "tool"))]
use windows as facts;
// Files: modes, owners, syncs.
#[cfg(not(unix))]
use portable as files;
#[cfg(unix)]
use unix as files;
// `run`: how cargo is started tied to `run`, and how signals reach it.
#[cfg(target_os = "linux")]
use linux as tie;
#[cfg(not(target_os = "linux"))]
use portable as tie;
#[cfg(all(unix, feature = "tool"))]
use unix as signals;
#[cfg(all(windows, feature = "tool"))]
use windows as signals;

/// Whether a socket bound to `addr` takes connections to `localhost`: a loopback address
/// (IPv4-mapped ones included) or a wildcard.
#[cfg(any(target_os = "linux", feature = "tool"))]
fn reaches_localhost(addr: std::net::IpAddr) -> bool {
    let addr = addr.to_canonical();
    addr.is_loopback() || addr.is_unspecified()
}

/// The OS ephemeral port range (first, last), where the kernel picks ports for outgoing
/// connections: `/proc/sys/net/ipv4/ip_local_port_range` on Linux,
/// `net.inet.ip.portrange.first`/`last` on macOS, `netsh`'s dynamic port range on Windows,
/// IANA's 49152-65535 elsewhere. `None` when the OS says something that does not parse.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    facts::ephemeral_range()
}

/// The addresses a free-port check binds: `127.0.0.1` and `[::1]` everywhere (a server on
/// either is reached as `localhost`), and 0.0.0.0 where a loopback bind succeeds while
/// another socket holds the wildcard address (macOS and the BSDs let the more specific
/// bind share the port; so may Windows). Linux refuses that bind, and a wildcard bind there
/// would also count servers on other addresses, which `localhost` does not reach.
pub fn free_port_check_addresses() -> &'static [std::net::IpAddr] {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    const LOOPBACKS: [IpAddr; 3] = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    ];
    if cfg!(target_os = "linux") {
        &LOOPBACKS[..2]
    } else {
        &LOOPBACKS
    }
}

/// The range in `netsh interface ipv4 show dynamicport tcp`'s answer: its first two
/// `label : number` lines are the start port and the number of ports, in every language
/// Windows speaks.
#[cfg(any(all(windows, feature = "tool"), test))]
fn parse_dynamic_port_range(text: &str) -> Option<(u16, u16)> {
    let mut numbers = text
        .lines()
        .filter_map(|line| line.rsplit_once(':')?.1.trim().parse::<u32>().ok());
    let (start, count) = (numbers.next()?, numbers.next()?);
    let last = start.checked_add(count)?.checked_sub(1)?;
    Some((u16::try_from(start).ok()?, u16::try_from(last).ok()?)).filter(|(a, b)| a <= b)
}

/// A listening TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Socket {
    pub port: u16,
    /// What names the socket to [`socket_owners`]: its inode on Linux; its owner's pid and
    /// its port (`pid << 16 | port`) where the OS names the owner with the socket.
    pub id: u64,
    /// Bound to a loopback or wildcard address, so `localhost:PORT` reaches it.
    pub local: bool,
}

/// Every listening TCP socket, IPv4 and IPv6, without binding any; `None` where the OS has
/// no such listing (a bind then tells whether a port is taken, not by whom).
pub fn listening_sockets() -> Option<Vec<Socket>> {
    facts::listening_sockets()
}

/// (port, pid) of every process holding one of the sockets of `ports_by_id` (a
/// [`Socket::id`] to its port), each once, in pid order. Only our own user's processes are
/// visible unless we are root; empty where the OS does not tell.
pub fn socket_owners(ports_by_id: &HashMap<u64, u16>) -> Vec<(u16, u32)> {
    if ports_by_id.is_empty() {
        return Vec::new();
    }
    facts::socket_owners(ports_by_id)
}

/// A process's command line as its arguments (empty where the OS does not tell).
pub fn command_args(pid: u32) -> Vec<String> {
    facts::command_args(pid)
}

/// The pid holding the exclusive lock on `file` (the registry's lock file), where the OS
/// tells.
pub fn lock_holder(file: &File) -> Option<u32> {
    facts::lock_holder(file)
}

/// The command that tells who holds `file` open, for a message: `fuser FILE` on Unix,
/// Sysinternals' `handle FILE` on Windows.
pub fn who_holds(file: &Path) -> String {
    let tool = if cfg!(windows) { "handle" } else { "fuser" };
    format!("`{tool} {}`", file.display())
}

/// A process's start time in the OS's own unit (clock ticks since boot on Linux,
/// microseconds since the epoch on macOS, 100 ns since 1601 on Windows), or `None`
/// if no such process exists. With the pid it identifies one process, even after the pid is
/// recycled.
pub fn process_start_time(pid: u32) -> Option<u64> {
    facts::process_start_time(pid)
}

/// Whether process `pid` is stopped (by SIGSTOP, SIGTSTP or a terminal read).
pub fn is_stopped(pid: u32) -> bool {
    facts::is_stopped(pid)
}

/// This process's user name from the system's user database (`/etc/passwd`), else `uid N`;
/// `None` where the OS has no user ids.
pub fn user_name() -> Option<String> {
    files::user_name()
}

/// Creates `dir` and its parents, private to this user (0700) where the OS has modes.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    files::private_dir(&mut builder);
    builder.create(dir)
}

/// Makes `options` create a file private to this user (0600) where the OS has modes.
pub fn private_file(options: &mut OpenOptions) -> &mut OpenOptions {
    files::private_file(options);
    options
}

/// A file's permission bits (0o644 where the OS has none).
pub fn mode(m: &fs::Metadata) -> u32 {
    files::mode(m)
}

/// Gives `file` the permission bits `mode`, where the OS has them.
pub fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    files::set_mode(file, mode)
}

/// What names a file on its device (its inode), or 0 where the OS does not tell: with the
/// size and mtime, whether a file was replaced.
pub fn file_id(m: &fs::Metadata) -> u64 {
    files::file_id(m)
}

/// What a file that is neither a regular file, a directory nor a symlink is: "a FIFO", "a
/// device", "a socket"; `None` where the OS has no such kinds.
pub fn special_kind(t: fs::FileType) -> Option<&'static str> {
    files::special_kind(t)
}

/// Whether [`open_regular`] follows a symlink that the path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A link to a regular file is read (a checkout's `Cargo.toml` may be one).
    Follow,
    /// A link is refused: the registry dir's files are the tool's own, never links.
    Refuse,
}

/// Opens `path` for reading if, and only if, it is a regular file, checked on what was
/// opened (not on a name that may be swapped in between): a FIFO is opened without waiting
/// for a writer and refused, as are devices, sockets, directories and, with
/// [`Links::Refuse`], a symlink. The refusal is an `InvalidInput` error saying what the
/// path is. Returns the file with its metadata (the check's own `fstat`: a caller that
/// wants the size asks no second time).
pub fn open_regular(path: &Path, links: Links) -> std::io::Result<(File, std::fs::Metadata)> {
    open_checked_with_metadata(path, OpenOptions::new().read(true), links)
}

/// [`open_regular`] with `options` (to append, to create): a FIFO is not waited on for a
/// reader either (the open fails at once), and what was opened or created must be a
/// regular file.
pub fn open_checked(path: &Path, options: &OpenOptions, links: Links) -> std::io::Result<File> {
    open_checked_with_metadata(path, options, links).map(|(file, _)| file)
}

fn open_checked_with_metadata(
    path: &Path,
    options: &OpenOptions,
    links: Links,
) -> std::io::Result<(File, std::fs::Metadata)> {
    let refuse = |kind: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {kind}, not a regular file"),
        )
    };
    let file = match files::open_without_waiting(path, options.clone(), links) {
        Ok(f) => f,
        Err(e) if links == Links::Refuse && files::is_link_refusal(&e) => {
            return Err(refuse("a symlink"));
        }
        // A FIFO without a reader, opened to write without waiting.
        Err(e) if files::is_fifo_refusal(&e) => return Err(refuse("a FIFO")),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    let t = metadata.file_type();
    if t.is_file() {
        return Ok((file, metadata));
    }
    Err(refuse(if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        files::special_kind(t).unwrap_or("a special file")
    }))
}

/// Why the directory `dir` (whose metadata is `m`) is not safe to keep the registry in:
/// someone else owns it, or others may write in it (as ssh's StrictModes checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirTrust {
    /// Ours, and nobody else may write in it (or the OS has no owners).
    Private,
    ForeignOwner {
        owner: u32,
        me: u32,
    },
    OthersWrite {
        mode: u32,
    },
}

/// Whether `dir` is ours alone: see [`DirTrust`].
pub fn dir_trust(dir: &Path, m: &fs::Metadata) -> std::io::Result<DirTrust> {
    files::dir_trust(dir, m)
}

/// Puts the temp file `tmp` in place of `target` in one rename. Where another program may
/// hold `target` open without letting it be replaced (Windows: a sharing violation, or
/// access denied while a deleted file's name lingers), the rename is tried again for up to
/// 2 s; readers never see a torn file either way.
pub fn persist(
    mut tmp: tempfile::NamedTempFile,
    target: &Path,
) -> Result<File, tempfile::PersistError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match tmp.persist(target) {
            Ok(f) => return Ok(f),
            Err(e)
                if files::rename_may_pass_later(&e.error)
                    && std::time::Instant::now() < deadline =>
            {
                tmp = e.file;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Renames `from` over `to`, tried again as [`persist`] does.
pub fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match fs::rename(from, to) {
            Err(e) if files::rename_may_pass_later(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// `path` made absolute with every link resolved, spelled one way: on Windows without the
/// `\\?\` prefix std adds and with an upper-case drive letter (see
/// [`styxy_build::rules::plain_windows_path`]), so that one checkout is one instance
/// however it is reached.
pub fn canonicalize(path: &Path) -> std::io::Result<std::path::PathBuf> {
    styxy_build::rules::canonicalize(path)
}

/// Makes a rename in `dir` durable (a no-op where the OS cannot sync a directory).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    files::sync_dir(dir)
}

/// The exit code a shell would report for `status`: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    files::exit_code(status)
}

/// The program and arguments that start `program args` so that it dies with this process:
/// on Linux through this binary again (`/proc/self/exe trampoline PID program args…`, the
/// trampoline calling [`exec_tied_to`]); elsewhere as it is.
pub fn tied_command(
    trampoline: &str,
    program: OsString,
    args: Vec<OsString>,
) -> (OsString, Vec<OsString>) {
    tie::tied_command(trampoline, program, args)
}

/// Whether a child started by [`tied_command`] after a [`Forwarder`] exists dies with this
/// process however it ends: on Linux through the trampoline's parent-death signal, on
/// Windows through the kill-on-close job object. Elsewhere (macOS has neither) `run` hands
/// its lease to the child instead, which `cargo run` turns into the bin with an `exec`.
pub const CHILD_DIES_WITH_PARENT: bool = cfg!(any(target_os = "linux", windows));

/// What keeps [`exec_tied_to`] from tying a process to its parent.
#[derive(Debug)]
pub enum TieError {
    /// The parent is gone already: nothing would end this process later.
    ParentGone,
    /// The process runs untied (the OS refused, or has no way): the bin may outlive its
    /// parent.
    Untied(std::io::Error),
    /// The exec itself failed.
    Exec(std::io::Error),
}

/// Asks the OS to kill this process when `parent` dies, then replaces this process with
/// `program args`. Returns only on failure; an [`TieError::Untied`] comes back through
/// `warn` and the exec goes on.
#[cfg(feature = "tool")]
pub fn exec_tied_to(
    parent: u32,
    program: &std::ffi::OsStr,
    args: &[OsString],
    warn: impl FnOnce(TieError),
) -> TieError {
    tie::exec_tied_to(parent, program, args, warn)
}

/// Signals that a process (not the terminal) sends to this one (SIGINT, SIGQUIT, SIGTERM,
/// SIGHUP), caught from creation so none is lost before the child exists, and passed on to
/// a child by [`Forwarder::forward_to`].
#[cfg(feature = "tool")]
pub use signals::{Forwarder, Forwarding};

/// Makes `cmd` start in a process group of its own (a console process group on Windows),
/// so that [`end_process_group`] ends it with every process it starts.
#[cfg(feature = "tool")]
pub fn own_process_group(cmd: &mut std::process::Command) {
    signals::own_process_group(cmd);
}

/// Ends `child`, started with [`own_process_group`], and what it started: SIGTERM to the
/// group, then SIGKILL if the child still runs after 5 s (on Windows: terminated, its job
/// object taking the rest). Returns its exit code as a shell reports it, if it was reaped.
#[cfg(feature = "tool")]
pub fn end_process_group(child: &mut std::process::Child) -> Option<u8> {
    signals::end_process_group(child).map(exit_code)
}

/// Runs `on_signal` once, on a thread of its own, when this process is asked to stop
/// (Ctrl-C, SIGTERM).
#[cfg(feature = "tool")]
pub fn on_termination(on_signal: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    signals::on_termination(on_signal)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    #[test]
    fn reads_netsh_dynamic_port_range_in_any_language() {
        let english = "\nProtocol tcp Dynamic Port Range\n---------------------------------\nStart Port      : 49152\nNumber of Ports : 16384\n\n";
        assert_eq!(
            super::parse_dynamic_port_range(english),
            Some((49152, 65535))
        );
        let german = "Dynamischer Portbereich für tcp-Protokoll\n---------------------------------\nStartport       : 10000\nAnzahl der Ports: 1000\n";
        assert_eq!(
            super::parse_dynamic_port_range(german),
            Some((10000, 10999))
        );
        for bad in [
            "",
            "Start Port : 60000\nNumber of Ports : 9000\n",
            "Start : x\n",
        ] {
            assert_eq!(super::parse_dynamic_port_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn our_own_start_time_is_stable_and_a_missing_pid_has_none() {
        let me = std::process::id();
        let t = super::process_start_time(me);
        assert!(t.is_some());
        assert_eq!(t, super::process_start_time(me));
        assert_eq!(super::process_start_time(u32::MAX), None);
    }

    #[test]
    fn sees_our_own_listener_and_names_us() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let Some(sockets) = super::listening_sockets() else {
            return;
        };
        let ours: std::collections::HashMap<u64, u16> = sockets
            .iter()
            .filter(|s| s.port == port)
            .map(|s| (s.id, s.port))
            .collect();
        assert!(!ours.is_empty(), "{port} not in {sockets:?}");
        assert!(super::socket_owners(&ours).contains(&(port, std::process::id())));
    }
}
