//! Windows: listening sockets and their owners from `GetExtendedTcpTable`, process start
//! times from `GetProcessTimes`, image names from `QueryFullProcessImageNameW`, and `run`'s
//! tie of the bin to itself: a job object that kills what is left in it when `run` ends (as
//! cargo does for its own children), and Ctrl-C left to the console, which delivers it to
//! every process attached, the bin included. No `/proc` path is named here: under Wine, a
//! drive maps the Linux root, and a Windows answer must come from a Windows call.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{OsString, c_void};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::windows::ffi::OsStringExt;

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_INSUFFICIENT_BUFFER, FILETIME, HANDLE, NO_ERROR, STILL_ACTIVE,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetExtendedTcpTable, MIB_TCP_STATE_LISTEN, MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID,
    TCP_TABLE_OWNER_PID_LISTENER,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_NAME_WIN32,
    PROCESS_QUERY_LIMITED_INFORMATION, QueryFullProcessImageNameW,
};

use super::Socket;

/// Windows' dynamic port range as `netsh interface ipv4 show dynamicport tcp` tells it (no
/// Win32 call does), else its default since Vista, 49152-65535. One `netsh` a process,
/// before the lock is taken (see [`crate::probe::ephemeral_range`]).
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let told = std::process::Command::new("netsh")
        .args(["interface", "ipv4", "show", "dynamicport", "tcp"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| super::parse_dynamic_port_range(&String::from_utf8_lossy(&out.stdout)));
    told.or(Some((49152, 65535)))
}

/// A socket's id here is its owner's pid and its port (`pid << 16 | port`): the table names
/// the owner with the socket, so [`socket_owners`] needs no second look.
fn socket_id(pid: u32, port: u16) -> u64 {
    (u64::from(pid) << 16) | u64::from(port)
}

/// The listening rows of both families' owner tables.
pub fn listening_sockets() -> Option<Vec<Socket>> {
    let v4 = table::<MIB_TCPROW_OWNER_PID>(AF_INET.into());
    let v6 = table::<MIB_TCP6ROW_OWNER_PID>(AF_INET6.into());
    if v4.is_none() && v6.is_none() {
        return None;
    }
    let mut rows = Vec::new();
    for r in v4.unwrap_or_default() {
        if r.dwState == MIB_TCP_STATE_LISTEN as u32 {
            // The address and the port are in network byte order.
            let addr = Ipv4Addr::from(u32::from_be(r.dwLocalAddr));
            rows.push(row(IpAddr::V4(addr), r.dwLocalPort, r.dwOwningPid));
        }
    }
    for r in v6.unwrap_or_default() {
        if r.dwState == MIB_TCP_STATE_LISTEN as u32 {
            let addr = Ipv6Addr::from(r.ucLocalAddr);
            rows.push(row(IpAddr::V6(addr), r.dwLocalPort, r.dwOwningPid));
        }
    }
    Some(rows)
}

fn row(addr: IpAddr, net_port: u32, pid: u32) -> Socket {
    // The port is the low 16 bits, in network byte order.
    let port = u16::from_be((net_port & 0xffff) as u16);
    Socket {
        port,
        id: socket_id(pid, port),
        local: super::reaches_localhost(addr),
    }
}

/// A `MIB_TCPTABLE_OWNER_PID`-shaped table (a `u32` count, then the rows) of family `af`.
trait Row: Copy {}
impl Row for MIB_TCPROW_OWNER_PID {}
impl Row for MIB_TCP6ROW_OWNER_PID {}

fn table<R: Row>(af: u32) -> Option<Vec<R>> {
    let mut size: u32 = 0;
    // Sockets come and go between asking the size and reading: ask again a few times.
    for _ in 0..4 {
        // u64s keep the buffer aligned for the rows.
        let mut buf = vec![0u64; (size as usize).div_ceil(8).max(1)];
        let mut len = u32::try_from(buf.len() * 8).ok()?;
        // SAFETY: `buf` is writable for `len` bytes and aligned for the table; the call
        // writes at most `len` bytes and sets `len` to the size it needs.
        let rc = unsafe {
            GetExtendedTcpTable(
                buf.as_mut_ptr().cast::<c_void>(),
                &raw mut len,
                0,
                af,
                TCP_TABLE_OWNER_PID_LISTENER,
                0,
            )
        };
        if rc == ERROR_INSUFFICIENT_BUFFER {
            size = len;
            continue;
        }
        if rc != NO_ERROR {
            return None;
        }
        let bytes = (len as usize).min(buf.len() * 8);
        let base = buf.as_ptr().cast::<u8>();
        let header = std::mem::size_of::<u32>();
        let align = std::mem::align_of::<R>().max(header);
        if bytes < header {
            return Some(Vec::new());
        }
        // SAFETY: the table starts with its row count, a u32 the call wrote.
        let count = unsafe { base.cast::<u32>().read() } as usize;
        let room = (bytes - align) / std::mem::size_of::<R>();
        let rows = (0..count.min(room))
            .map(|i| {
                // SAFETY: row `i` lies within the `bytes` the call wrote (checked by
                // `room`), at the table's first row (the count padded to the rows'
                // alignment) plus `i` rows; `read_unaligned` needs no alignment.
                unsafe {
                    base.add(align + i * std::mem::size_of::<R>())
                        .cast::<R>()
                        .read_unaligned()
                }
            })
            .collect();
        return Some(rows);
    }
    None
}

/// The owner is in the socket's id (see [`socket_id`]).
pub fn socket_owners(ports_by_id: &HashMap<u64, u16>) -> Vec<(u16, u32)> {
    let mut owners: Vec<(u16, u32)> = ports_by_id
        .iter()
        .filter_map(|(id, port)| {
            let pid = u32::try_from(id >> 16).ok()?;
            // pid 0 is the System Idle Process: the table's word for "not told".
            (pid != 0).then_some((*port, pid))
        })
        .collect();
    owners.sort_unstable_by_key(|(port, pid)| (*pid, *port));
    owners.dedup();
    owners
}

/// A process, opened to ask about it; closed on drop.
struct Process(HANDLE);

impl Process {
    fn open(pid: u32) -> Option<Self> {
        // SAFETY: OpenProcess takes no pointers; a null handle is its failure.
        let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        (!h.is_null()).then_some(Self(h))
    }

    fn running(&self) -> bool {
        let mut code = 0u32;
        // SAFETY: `self.0` is an open process handle; `code` is writable.
        let ok = unsafe { GetExitCodeProcess(self.0, &raw mut code) } != 0;
        ok && code == STILL_ACTIVE as u32
    }

    /// Its creation time, in 100 ns since 1601.
    fn created(&self) -> Option<u64> {
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: `self.0` is an open process handle; the four FILETIMEs are writable.
        let ok = unsafe {
            GetProcessTimes(
                self.0,
                &raw mut created,
                &raw mut exited,
                &raw mut kernel,
                &raw mut user,
            )
        } != 0;
        ok.then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
    }

    fn image(&self) -> Option<OsString> {
        let mut buf = vec![0u16; 32 * 1024];
        let mut len = u32::try_from(buf.len()).ok()?;
        // SAFETY: `buf` is writable for `len` UTF-16 units; the call sets `len` to the
        // units it wrote, without the terminating nul.
        let ok = unsafe {
            QueryFullProcessImageNameW(self.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &raw mut len)
        } != 0;
        ok.then(|| OsString::from_wide(&buf[..(len as usize).min(buf.len())]))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: `self.0` is an open handle that nothing else closes.
        unsafe { CloseHandle(self.0) };
    }
}

/// The image path only: another process's command line is in its memory, not told by a
/// Win32 call.
pub fn command_args(pid: u32) -> Vec<String> {
    Process::open(pid)
        .and_then(|p| p.image())
        .map(|image| vec![image.to_string_lossy().into_owned()])
        .unwrap_or_default()
}

/// Windows does not tell who holds a file lock.
pub fn lock_holder(_file: &File) -> Option<u32> {
    None
}

/// The creation time of a process that still runs (a process object outlives its process
/// while someone holds a handle to it: that one is dead).
pub fn process_start_time(pid: u32) -> Option<u64> {
    let p = Process::open(pid)?;
    if !p.running() {
        return None;
    }
    p.created()
}

/// A Windows process is not stopped by a signal.
pub fn is_stopped(_pid: u32) -> bool {
    false
}

#[cfg(feature = "tool")]
pub use run::{Forwarder, Forwarding, on_termination};

/// `CREATE_NEW_PROCESS_GROUP`: Ctrl-C typed at the server's console does not reach it.
pub fn own_process_group(cmd: &mut std::process::Command) {
    use std::os::windows::process::CommandExt;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

/// Terminates the child; `run`'s kill-on-close job object ends what it started.
pub fn end_process_group(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let _ = child.kill();
    child.wait().ok()
}

#[cfg(feature = "tool")]
mod run {
    use std::sync::Mutex;

    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
        SetInformationJobObject,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    use windows_sys::core::BOOL;

    /// Puts this process in a new job object that kills every process in it when its last
    /// handle closes. The handle is never closed by us: it closes when this process ends,
    /// however it ends, and takes the children (which inherit the job) with it.
    fn join_kill_on_close_job() -> std::io::Result<()> {
        // SAFETY: null attributes and name are allowed; a null handle is the failure.
        let job: HANDLE = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if job.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the struct is plain data, valid when zeroed.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        let size = u32::try_from(std::mem::size_of_val(&info)).unwrap_or(u32::MAX);
        // SAFETY: `job` is open; `info` is readable for `size` bytes.
        let set = unsafe {
            SetInformationJobObject(
                job,
                JobObjectExtendedLimitInformation,
                (&raw const info).cast(),
                size,
            )
        };
        // SAFETY: `job` is open; the current-process pseudo handle needs no closing.
        if set == 0 || unsafe { AssignProcessToJobObject(job, GetCurrentProcess()) } == 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: `job` is open and ours.
            unsafe { windows_sys::Win32::Foundation::CloseHandle(job) };
            return Err(e);
        }
        Ok(())
    }

    /// Ctrl-C and Ctrl-Break reach every process of the console: `run` lets the bin have
    /// them and waits for it.
    unsafe extern "system" fn let_the_child_have_it(_ctrl: u32) -> BOOL {
        1
    }

    /// See [`crate::os::Forwarder`]: here the job object and the console do the work.
    #[derive(Debug)]
    pub struct Forwarder(());

    /// A running [`Forwarder`]: stop it once the child is waited for.
    #[derive(Debug)]
    pub struct Forwarding(());

    impl Forwarder {
        /// Joins the job (children started from now on die with this process) and leaves
        /// Ctrl-C to the child.
        pub fn new() -> std::io::Result<Self> {
            join_kill_on_close_job()?;
            // SAFETY: the handler is a plain function that lives as long as the process.
            if unsafe { SetConsoleCtrlHandler(Some(let_the_child_have_it), 1) } == 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Self(()))
        }

        /// The console signals `child` itself; nothing to pass on.
        pub fn forward_to(self, _child: u32) -> Forwarding {
            Forwarding(())
        }
    }

    impl Forwarding {
        /// Ctrl-C acts on this process again.
        pub fn stop(self) {
            // SAFETY: removes the handler added by `Forwarder::new`.
            unsafe { SetConsoleCtrlHandler(Some(let_the_child_have_it), 0) };
        }
    }

    type OnSignal = Box<dyn FnOnce() + Send>;
    static ON_TERMINATION: Mutex<Option<OnSignal>> = Mutex::new(None);

    unsafe extern "system" fn terminate(_ctrl: u32) -> BOOL {
        let f = ON_TERMINATION.lock().ok().and_then(|mut f| f.take());
        match f {
            Some(f) => {
                // The system calls the handler on a thread of its own.
                f();
                1
            }
            None => 0,
        }
    }

    pub fn on_termination(on_signal: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        if let Ok(mut slot) = ON_TERMINATION.lock() {
            *slot = Some(Box::new(on_signal));
        }
        // SAFETY: the handler is a plain function that lives as long as the process.
        if unsafe { SetConsoleCtrlHandler(Some(terminate), 1) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
