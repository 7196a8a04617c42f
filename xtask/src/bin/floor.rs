//! The floors the bench measures styxy against, in the same run (spec §10): with no
//! argument, an empty binary; `floor lock-write DIR`, a minimal locked atomic writer (a
//! blocking lock on a sidecar file, a temp file written and synced, renamed into place,
//! the directory synced).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, dir] = args.as_slice()
        && mode == "lock-write"
    {
        let dir = Path::new(dir);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("floor.lock"))?;
        lock.lock()?;
        let tmp = dir.join(format!(".floor.{}.tmp", std::process::id()));
        let mut f = File::create(&tmp)?;
        f.write_all(&[b'x'; 512])?;
        f.sync_data()?;
        std::fs::rename(&tmp, dir.join("floor.dat"))?;
        File::open(dir)?.sync_all()?;
        lock.unlock()?;
    }
    Ok(())
}
