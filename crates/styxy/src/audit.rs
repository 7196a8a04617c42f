//! The audit trail: one JSON line per registry change, appended under the same lock as the
//! change, rotated by size. Readers never fail on a torn last line (a writer killed
//! mid-append): it is skipped with a warning.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::allocate::Event;
use crate::error::{Error, Result};
use crate::model::{PortRange, Settings};
use serde::{Deserialize, Serialize};

/// One line of the trail. Every field but `ts`, `event`, `pid` and `user` depends on the
/// event; `lock_wait_ms` and `lock_hold_ms` are on the first line of each locked change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC.
    pub ts: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// For `INSTANCE_MOVED`: the port the instance held before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<PortRange>>,
    /// For `TYPE_EDITED`: the ranges before the edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ranges: Option<Vec<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The process holding a lease (`pid` is the process that wrote the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_pid: Option<u32>,
    pub pid: u32,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_hold_ms: Option<f64>,
    /// The commit the record belongs to (every record of one locked change has the same),
    /// so the next writer can tell whether a killed writer's records reached the trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Record {
    /// The record's time, if `ts` parses.
    pub fn time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.ts).ok()
    }
}

/// The current audit log in the registry directory; rotated ones are `audit.N.jsonl`.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// The user name for the trail: `$USER`, `$LOGNAME` or `$USERNAME`; where none is set
/// (services, cron), the process's user by its uid: its name in `/etc/passwd`, else
/// `uid N`.
fn user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(crate::os::user_name)
        .unwrap_or_else(|| "unknown".to_owned())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The records for `events` of one locked change.
pub fn records(events: &[Event], lock_wait: Duration, lock_hold: Duration) -> Vec<Record> {
    let now = SystemTime::now();
    let ts = humantime::format_rfc3339_micros(now).to_string();
    let (pid, user) = (std::process::id(), user());
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let commit = format!("{nanos:x}-{pid}");
    events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let mut value = serde_json::to_value(e).ok()?;
            let map = value.as_object_mut()?;
            map.insert("ts".into(), ts.clone().into());
            map.insert("pid".into(), pid.into());
            map.insert("user".into(), user.clone().into());
            map.insert("commit".into(), commit.clone().into());
            if i == 0 {
                map.insert("lock_wait_ms".into(), ms(lock_wait).into());
                map.insert("lock_hold_ms".into(), ms(lock_hold).into());
            }
            serde_json::from_value(value).ok()
        })
        .collect()
}

fn rotated(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("audit.{n}.jsonl"))
}

/// Appends `records` to the trail in `dir`, rotating first when the log has reached
/// `settings.audit_max_bytes`. Call only under the registry lock.
pub fn append(dir: &Path, settings: &Settings, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let path = dir.join(AUDIT_FILE);
    crate::fsx::check_regular(&path)?;
    if fs::metadata(&path).is_ok_and(|m| m.len() >= settings.audit_max_bytes) {
        let keep = settings.audit_files;
        let _ = fs::remove_file(rotated(dir, keep));
        for n in (1..keep).rev() {
            let _ = crate::os::rename(&rotated(dir, n), &rotated(dir, n + 1));
        }
        crate::os::rename(&path, &rotated(dir, 1))
            .map_err(|e| Error::io("cannot rotate the audit log", &path, e))?;
    }
    let mut text = String::new();
    if ends_without_newline(&path) {
        // A writer was killed mid-line: end its torn line so it does not swallow ours.
        text.push('\n');
    }
    for r in records {
        if let Ok(line) = serde_json::to_string(r) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    // Never a FIFO (an open to write would wait for a reader, under the lock), a device or
    // a link planted in the registry dir.
    crate::os::open_checked(
        &path,
        crate::os::private_file(&mut options),
        crate::os::Links::Refuse,
    )
    .and_then(|mut f| f.write_all(text.as_bytes()))
    .map_err(|e| Error::io("cannot append to the audit log", &path, e))
}

/// Appends `records`, the last commit's (as the state keeps them), unless the trail already
/// has them: a writer killed between its commit and its append left them out. Call only
/// under the registry lock.
pub fn recover(dir: &Path, settings: &Settings, records: &[Record]) -> Result<bool> {
    let Some(commit) = records.first().and_then(|r| r.commit.as_deref()) else {
        return Ok(false);
    };
    let needle = format!("\"commit\":\"{commit}\"");
    // str's substring search (two-way), not a comparison at each of 64 Ki offsets: this
    // runs under the lock at every write. Lossy, as the tail may begin inside a character.
    let recorded = [dir.join(AUDIT_FILE), rotated(dir, 1)]
        .iter()
        .any(|path| String::from_utf8_lossy(&tail(path)).contains(&needle));
    if recorded {
        return Ok(false);
    }
    append(dir, settings, records).map(|()| true)
}

/// The last 64 KiB of a file.
fn tail(path: &Path) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 64 * 1024;
    let Ok((mut f, metadata)) = crate::os::open_regular(path, crate::os::Links::Refuse) else {
        return Vec::new();
    };
    let len = metadata.len();
    let mut buf = Vec::new();
    let _ = f
        .seek(SeekFrom::Start(len.saturating_sub(TAIL)))
        .and_then(|_| f.read_to_end(&mut buf));
    buf
}

fn ends_without_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok((mut f, _)) = crate::os::open_regular(path, crate::os::Links::Refuse) else {
        return false;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] != b'\n'
}

/// Every record in `dir`, oldest first (rotated files too), and a warning for each line
/// that could not be read. Holds every record: where the trail may be large, use
/// [`for_each`].
#[cfg(feature = "tool")]
pub fn read(dir: &Path) -> (Vec<Record>, Vec<String>) {
    let mut out = Vec::new();
    let warnings = for_each(dir, |r| out.push(r));
    (out, warnings)
}

/// Streams every record in `dir` to `visit`, oldest first (rotated files too), one line at
/// a time: memory stays what `visit` keeps, whatever the trail's size. Returns a warning
/// for each line or file that could not be read.
#[cfg(feature = "tool")]
pub fn for_each(dir: &Path, mut visit: impl FnMut(Record)) -> Vec<String> {
    let mut files: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name.strip_prefix("audit.")?.strip_suffix(".jsonl")?;
                    Some((n.parse().ok()?, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.push((0, dir.join(AUDIT_FILE)));
    let mut warnings = Vec::new();
    for (_, path) in files {
        match crate::os::open_regular(&path, crate::os::Links::Refuse) {
            Ok((file, _)) => read_lines(&path, file, &mut visit, &mut warnings),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!("{}: skipped: {e}", path.display())),
        }
    }
    warnings
}

/// The longest line [`read`] takes as a record: a record is a few hundred bytes.
#[cfg(feature = "tool")]
const LINE_CAP: u64 = 64 * 1024;

/// The records of one trail file, streamed line by line (a file is never held whole, and a
/// line longer than [`LINE_CAP`] is skipped, not read into memory).
#[cfg(feature = "tool")]
fn read_lines(
    path: &Path,
    file: fs::File,
    visit: &mut impl FnMut(Record),
    warnings: &mut Vec<String>,
) {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(LINE_CAP + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                warnings.push(format!("{}:{n}: stopped reading: {e}", path.display()));
                break;
            }
        }
        let ended = line.last() == Some(&b'\n');
        if !ended && line.len() as u64 > LINE_CAP {
            warnings.push(format!(
                "{}:{n}: skipped a line longer than {LINE_CAP} bytes",
                path.display()
            ));
            // The rest of the long line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut reader).take(LINE_CAP).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(text.trim_end()) {
            Ok(r) => visit(r),
            Err(_) if !ended => warnings.push(format!(
                "{}: skipped a torn last line (a writer was killed mid-append)",
                path.display()
            )),
            Err(e) => warnings.push(format!(
                "{}:{n}: skipped a line that is not an audit record ({e})",
                path.display()
            )),
        }
    }
}

/// Which records to keep: every given criterion must hold.
#[cfg(feature = "tool")]
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// An event name; case does not matter.
    pub event: Option<String>,
    /// A glob on the service type.
    pub service: Option<glob::Pattern>,
    /// A glob on the instance id, as on the service type.
    pub instance: Option<glob::Pattern>,
    /// Free text, matched case-insensitively against the whole record.
    pub text: Option<String>,
}

#[cfg(feature = "tool")]
impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        let t = r.time();
        self.event
            .as_ref()
            .is_none_or(|e| r.event.eq_ignore_ascii_case(e))
            && self
                .service
                .as_ref()
                .is_none_or(|p| r.service_type.as_deref().is_some_and(|s| p.matches(s)))
            && self
                .instance
                .as_ref()
                .is_none_or(|p| r.instance.as_deref().is_some_and(|i| p.matches(i)))
            && self.since.is_none_or(|s| t.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| t.is_some_and(|t| t <= u))
            && self.text.as_ref().is_none_or(|q| {
                serde_json::to_string(r)
                    .is_ok_and(|line| line.to_lowercase().contains(&q.to_lowercase()))
            })
    }
}

/// A time as users type it: RFC 3339 (`2026-11-27T10:00:00Z`, `2026-11-27T11:00:00+01:00`)
/// or an age before now (`90m`, `1h`, `2d`).
#[cfg(feature = "tool")]
pub fn parse_time(s: &str) -> std::result::Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    // humantime reads UTC only: an offset is taken off by hand.
    if let Some((local, sign, hours, minutes)) = utc_offset(s)
        && let Ok(t) = humantime::parse_rfc3339_weak(local)
    {
        let offset = Duration::from_secs(hours * 3600 + minutes * 60);
        let utc = if sign > 0 {
            t.checked_sub(offset)
        } else {
            t.checked_add(offset)
        };
        return utc.ok_or_else(|| format!("{s:?} is out of range"));
    }
    let age: Duration = humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!(
            "{s:?} is an age too long to count (at most about 584 years; any age before 1970 means since the first record)"
        ),
        _ => format!(
            "{s:?} is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor an age (1h, 2d)"
        ),
    })?;
    Ok(SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH))
}

/// `TIME+HH:MM` or `TIME-HH:MM`: the time without the offset, and the offset.
#[cfg(feature = "tool")]
fn utc_offset(s: &str) -> Option<(&str, i8, u64, u64)> {
    let (local, offset) = s.split_at_checked(s.len().checked_sub(6)?)?;
    let b = offset.as_bytes();
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if b[3] != b':' || !local.contains('T') {
        return None;
    }
    let hours: u64 = offset.get(1..3)?.parse().ok()?;
    let minutes: u64 = offset.get(4..6)?.parse().ok()?;
    (hours < 24 && minutes < 60).then_some((local, sign, hours, minutes))
}
