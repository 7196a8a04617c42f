//! macOS: listening sockets and their owners from libproc (through the `listeners` crate,
//! which walks every process's socket descriptors with `proc_pidfdinfo`), process start
//! times and states from `proc_pidinfo(PROC_PIDTBSDINFO)`, command lines from
//! `sysctl(KERN_PROCARGS2)`, the ephemeral range from `net.inet.ip.portrange.*`. Built and
//! linted here, not run: these calls are tested on macOS by the crates' maintainers.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, c_int, c_void};
use std::fs::File;

use super::Socket;

/// `sysctl net.inet.ip.portrange.first` and `.last`.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let read = |name: &CStr| -> Option<u16> {
        let mut value: c_int = 0;
        let mut len = std::mem::size_of::<c_int>();
        // SAFETY: `name` is nul-terminated; `value` is writable for `len` bytes.
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                (&raw mut value).cast::<c_void>(),
                &raw mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (rc == 0)
            .then_some(value)
            .and_then(|v| u16::try_from(v).ok())
    };
    match (
        read(c"net.inet.ip.portrange.first"),
        read(c"net.inet.ip.portrange.last"),
    ) {
        (Some(a), Some(b)) if a <= b => Some((a, b)),
        _ => None,
    }
}

/// A socket's id here is its owner's pid and its port (`pid << 16 | port`): libproc names
/// the owner with the socket.
fn socket_id(pid: u32, port: u16) -> u64 {
    (u64::from(pid) << 16) | u64::from(port)
}

/// The TCP sockets in LISTEN of every process we may inspect (our own user's, or all as
/// root).
pub fn listening_sockets() -> Option<Vec<Socket>> {
    let all = listeners::get_all().ok()?;
    Some(
        all.into_iter()
            .filter(|l| {
                l.protocol == listeners::Protocol::TCP && l.state == listeners::SocketState::Listen
            })
            .map(|l| Socket {
                port: l.socket.port(),
                id: socket_id(l.process.pid, l.socket.port()),
                local: super::reaches_localhost(l.socket.ip()),
            })
            .collect(),
    )
}

/// The owner is in the socket's id (see [`socket_id`]).
pub fn socket_owners(ports_by_id: &HashMap<u64, u16>) -> Vec<(u16, u32)> {
    let mut owners: Vec<(u16, u32)> = ports_by_id
        .iter()
        .filter_map(|(id, port)| Some((*port, u32::try_from(id >> 16).ok()?)))
        .collect();
    owners.sort_unstable_by_key(|(port, pid)| (*pid, *port));
    owners.dedup();
    owners
}

/// `KERN_PROCARGS2`: the argument count, the executable path, then the arguments, each
/// nul-terminated.
pub fn command_args(pid: u32) -> Vec<String> {
    let Ok(pid) = c_int::try_from(pid) else {
        return Vec::new();
    };
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = buf.len();
    // SAFETY: `mib` holds 3 ints; `buf` is writable for `len` bytes and the call sets `len`
    // to what it wrote.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast::<c_void>(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len < 4 {
        return Vec::new();
    }
    parse_procargs(&buf[..len.min(buf.len())])
}

fn parse_procargs(buf: &[u8]) -> Vec<String> {
    let Some((argc, rest)) = buf.split_first_chunk::<4>() else {
        return Vec::new();
    };
    let argc = usize::try_from(i32::from_ne_bytes(*argc)).unwrap_or(0);
    // The executable path, then nul padding, then the arguments.
    let mut parts = rest.split(|b| *b == 0).skip(1).skip_while(|p| p.is_empty());
    (0..argc)
        .map_while(|_| parts.next())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// macOS does not tell who holds an `flock`.
pub fn lock_holder(_file: &File) -> Option<u32> {
    None
}

fn bsd_info(pid: u32) -> Option<libc::proc_bsdinfo> {
    let pid = c_int::try_from(pid).ok()?;
    // SAFETY: the struct is plain data, valid when zeroed.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = c_int::try_from(std::mem::size_of::<libc::proc_bsdinfo>()).ok()?;
    // SAFETY: `info` is writable for `size` bytes; the call returns the bytes it wrote.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&raw mut info).cast::<c_void>(),
            size,
        )
    };
    (n == size).then_some(info)
}

/// Start time in microseconds since the epoch.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let info = bsd_info(pid)?;
    Some(info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
}

pub fn is_stopped(pid: u32) -> bool {
    bsd_info(pid).is_some_and(|i| i.pbi_status == libc::SSTOP)
}
