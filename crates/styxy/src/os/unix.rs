//! What every Unix shares: file modes and owners, directory sync, the user database, exit
//! statuses, and catching and passing on signals (signal-hook, rustix).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::DirTrust;

/// The effective uid: the owner of `/proc/self` where there is one, else of a file we make.
fn my_uid(dir: &Path) -> std::io::Result<u32> {
    match fs::metadata("/proc/self") {
        Ok(m) => Ok(m.uid()),
        Err(_) => tempfile::tempfile_in(dir)?.metadata().map(|m| m.uid()),
    }
}

pub fn user_name() -> Option<String> {
    let uid = fs::metadata("/proc/self").ok()?.uid();
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

pub fn private_dir(builder: &mut DirBuilder) {
    builder.mode(0o700);
}

pub fn private_file(options: &mut OpenOptions) {
    options.mode(0o600);
}

pub fn mode(m: &fs::Metadata) -> u32 {
    m.permissions().mode() & 0o7777
}

pub fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
}

pub fn file_id(m: &fs::Metadata) -> u64 {
    m.ino()
}

pub fn special_kind(t: fs::FileType) -> Option<&'static str> {
    if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

pub fn dir_trust(dir: &Path, m: &fs::Metadata) -> std::io::Result<DirTrust> {
    let me = my_uid(dir)?;
    if m.uid() != me {
        return Ok(DirTrust::ForeignOwner { owner: m.uid(), me });
    }
    let mode = m.permissions().mode() & 0o777;
    Ok(if mode & 0o022 != 0 {
        DirTrust::OthersWrite { mode }
    } else {
        DirTrust::Private
    })
}

/// A rename fails on Unix only for good.
pub fn rename_may_pass_later(_e: &std::io::Error) -> bool {
    false
}

/// `open(2)` with `O_NONBLOCK` (a FIFO opens at once instead of waiting for a writer; a
/// regular file reads as usual) and, to refuse links, `O_NOFOLLOW`.
pub fn open_without_waiting(
    path: &Path,
    mut options: OpenOptions,
    links: super::Links,
) -> std::io::Result<File> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NONBLOCK;
    if links == super::Links::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    options.custom_flags(flags.bits().cast_signed()).open(path)
}

/// `O_NOFOLLOW` on a symlink fails with `ELOOP`.
pub fn is_link_refusal(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// A FIFO opened to write with `O_NONBLOCK` and no reader fails with `ENXIO`.
pub fn is_fifo_refusal(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error())
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(code) => u8::try_from(code).unwrap_or(1),
        None => u8::try_from(128 + status.signal().unwrap_or(0)).unwrap_or(255),
    }
}

#[cfg(feature = "tool")]
pub use forward::{Forwarder, Forwarding, on_termination};

#[cfg(feature = "tool")]
pub fn own_process_group(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(feature = "tool")]
pub fn end_process_group(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    use rustix::process::{Pid, Signal, kill_process_group};
    let group = i32::try_from(child.id()).ok().and_then(Pid::from_raw)?;
    let _ = kill_process_group(group, Signal::TERM);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = kill_process_group(group, Signal::KILL);
                break child.wait().ok();
            }
        }
    };
    // Whatever of the group outlived its leader.
    let _ = kill_process_group(group, Signal::KILL);
    status
}

#[cfg(feature = "tool")]
mod forward {
    use rustix::process::{Pid, Signal};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook::iterator::Signals;

    /// Catches the signals and tells, for each, whether a process sent it (rather than the
    /// terminal, which signals the whole foreground process group, the child included).
    #[cfg(target_os = "linux")]
    mod caught {
        use signal_hook::iterator::SignalsInfo;
        use signal_hook::iterator::exfiltrator::WithOrigin;
        use signal_hook::low_level::siginfo::Cause;

        /// Linux tells a signal's origin (signal-hook's `extended-siginfo`, which builds
        /// only here).
        pub type Caught = SignalsInfo<WithOrigin>;

        pub fn new(signals: [i32; 4]) -> std::io::Result<Caught> {
            SignalsInfo::<WithOrigin>::new(signals)
        }

        pub fn each(caught: &mut Caught) -> impl Iterator<Item = (i32, bool)> + '_ {
            caught
                .forever()
                .map(|o| (o.signal, matches!(o.cause, Cause::Sent(_))))
        }
    }

    /// Elsewhere the origin is not told: SIGINT and SIGQUIT while this process is in the
    /// terminal's foreground group count as the terminal's (Ctrl-C, Ctrl-\, which reach
    /// the child too); the others, and those while in the background, as a process's.
    #[cfg(not(target_os = "linux"))]
    mod caught {
        use signal_hook::consts::{SIGINT, SIGQUIT};
        use signal_hook::iterator::Signals;

        pub type Caught = Signals;

        pub fn new(signals: [i32; 4]) -> std::io::Result<Caught> {
            Signals::new(signals)
        }

        fn in_foreground() -> bool {
            rustix::termios::tcgetpgrp(std::io::stdin())
                .is_ok_and(|fg| fg == rustix::process::getpgrp())
        }

        pub fn each(caught: &mut Caught) -> impl Iterator<Item = (i32, bool)> + '_ {
            caught.forever().map(|signal| {
                let terminal = matches!(signal, SIGINT | SIGQUIT) && in_foreground();
                (signal, !terminal)
            })
        }
    }

    /// See [`crate::os::Forwarder`].
    #[derive(Debug)]
    pub struct Forwarder {
        signals: caught::Caught,
    }

    /// A running [`Forwarder`]: stop it once the child is waited for.
    #[derive(Debug)]
    pub struct Forwarding {
        closer: signal_hook::iterator::Handle,
        thread: std::thread::JoinHandle<()>,
    }

    impl Forwarder {
        /// Catches the signals from now on.
        pub fn new() -> std::io::Result<Self> {
            Ok(Self {
                signals: caught::new([SIGINT, SIGQUIT, SIGTERM, SIGHUP])?,
            })
        }

        /// Passes each caught signal that a process sent on to `child` (the terminal
        /// signals its whole foreground process group, which the child is in), and
        /// continues a stopped child so that it gets it. `child` must not be reaped before
        /// [`Forwarding::stop`]: its pid names it until then, and a pidfd names it exactly
        /// where the kernel has them.
        pub fn forward_to(mut self, child: u32) -> Forwarding {
            let closer = self.signals.handle();
            let pid = i32::try_from(child).ok().and_then(Pid::from_raw);
            #[cfg(target_os = "linux")]
            let pidfd = pid.and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            });
            let thread = std::thread::spawn(move || {
                for (signal, sent) in caught::each(&mut self.signals) {
                    if !sent {
                        continue;
                    }
                    let (Some(pid), Some(sig)) = (pid, Signal::from_named_raw(signal)) else {
                        continue;
                    };
                    let send = |sig| {
                        #[cfg(target_os = "linux")]
                        if let Some(fd) = &pidfd {
                            return rustix::process::pidfd_send_signal(fd, sig);
                        }
                        rustix::process::kill_process(pid, sig)
                    };
                    let _ = send(sig);
                    // A stopped process keeps a signal pending until it is continued.
                    if crate::os::is_stopped(child) {
                        let _ = send(Signal::CONT);
                    }
                }
            });
            Forwarding { closer, thread }
        }
    }

    impl Forwarding {
        /// Stops catching: the signals act on this process again.
        pub fn stop(self) {
            self.closer.close();
            let _ = self.thread.join();
        }
    }

    pub fn on_termination(on_signal: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                on_signal();
            }
        });
        Ok(())
    }
}
