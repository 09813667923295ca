//! Step 2–4 of docs/protocol.md "Sandboxed filesystem requests": `PR_SET_NO_NEW_PRIVS`, Landlock `restrict_self` with a ruleset
//! built from the effective entries, then the seccomp filter (network restricted).
//! No mount layer and no truncate right are needed (docs/protocol.md "Sandbox"): the helper's own checks
//! cover the carve-outs, and it never truncates outside the writable roots.

use crate::sandbox::host::{landlock_abi, seccomp_available};
use crate::sandbox::plan::{NO_LANDLOCK, NO_SECCOMP};
use crate::sandbox::policy::{Network, Resolved};
use std::os::fd::AsRawFd;

/// Lock this process down; `Err(reason)` when the sandbox cannot be enforced.
pub fn lock_down(policy: &Resolved) -> Result<(), String> {
    let abi = landlock_abi();
    if abi == 0 {
        return Err(NO_LANDLOCK.into());
    }
    if !seccomp_available() {
        return Err(NO_SECCOMP.into());
    }
    let ruleset = crate::sandbox::landlock::prepare(policy, abi, None)?;
    let filter = crate::sandbox::seccomp::prepare(Network::Restricted)?;
    // SAFETY: prctl with constant arguments on this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(format!(
            "PR_SET_NO_NEW_PRIVS failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a ruleset descriptor we own.
    if unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            ruleset.fd.as_raw_fd(),
            0u32,
        )
    } < 0
    {
        return Err(format!(
            "Landlock restrict_self failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    drop(ruleset);
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    // SAFETY: a compiled program that outlives the call.
    if unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        )
    } < 0
    {
        return Err(format!(
            "installing the seccomp filter failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
