//! Small OS helpers with no policy of their own: descriptors and pipes
//! ([`fd`]), unix socket pairs and `SCM_RIGHTS` ([`socket`]), registering a
//! descriptor with the tokio reactor ([`reactor`]), pseudo-terminals ([`pty`])
//! the CPU count ([`cpus`]) and the home directory ([`home_dir`]).
//!
//! The bottom of the house above `protocol/`: nothing here imports any other
//! module of the crate except `protocol`, so every layer can use it.

pub mod fd;
pub mod pty;
pub mod reactor;
pub mod socket;

/// The server's home directory: `$HOME` if absolute, else the home directory of
/// its uid (from the user database).
pub fn home_dir() -> Option<std::path::PathBuf> {
    if let Some(h) = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Some(h);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// CPUs this process may run on, from its affinity mask: one syscall, where the
/// runtime's default (`available_parallelism`) reads cgroup files from /proc and
/// /sys on every start, a visible part of the handshake.
pub fn cpus() -> usize {
    // SAFETY: sched_getaffinity fills the set we pass; CPU_COUNT only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            (libc::CPU_COUNT(&set) as usize).max(1)
        } else {
            1
        }
    }
}
