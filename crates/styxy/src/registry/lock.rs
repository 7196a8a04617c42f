//! The registry lock: the OS's advisory lock on a sidecar file, waited for in the kernel
//! (which hands it over the moment its holder lets go) with a deadline.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A blocking lock of a file, taken by a helper thread so that the wait can have a deadline
/// (`flock` has none). Abandoned, the thread lets the lock go if it gets it late.
#[derive(Debug)]
pub struct Waiter {
    done: mpsc::Receiver<std::io::Result<()>>,
    abandoned: Arc<AtomicBool>,
}

impl Waiter {
    /// Starts waiting for the lock of `file`. The lock, once taken, belongs to `file`'s open
    /// file description, so it is `file`'s.
    pub fn start(file: &File) -> std::io::Result<Self> {
        let dup = file.try_clone()?;
        let (tx, done) = mpsc::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let gave_up = Arc::clone(&abandoned);
        std::thread::spawn(move || {
            let got = dup.lock();
            if got.is_ok() && gave_up.load(Ordering::SeqCst) {
                let _ = dup.unlock();
            }
            let _ = tx.send(got);
        });
        Ok(Self { done, abandoned })
    }

    /// Waits up to `limit`; whether the lock is held now.
    pub fn wait(&self, limit: Duration) -> std::io::Result<bool> {
        match self.done.recv_timeout(limit) {
            Ok(got) => got.map(|()| true),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(std::io::Error::other("the lock waiter stopped"))
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::SeqCst);
    }
}
