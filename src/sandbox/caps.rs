//! Capabilities a sandboxed process never keeps. Landlock confines paths and
//! seccomp the network, but a process running as root would otherwise keep powers
//! that step around both: making device nodes in a writable directory (raw disk
//! access), loading kernel modules, raw I/O, mounting, BPF, tracing. They are
//! dropped from the bounding, effective, permitted, inheritable and ambient sets in
//! the child, after the mount layer (which needs `CAP_SYS_ADMIN`) and before
//! `no_new_privs`. For a server that is not root this changes nothing.

/// The capabilities removed (numbers from linux/capability.h).
pub const DROPPED: &[u32] = &[
    12, // CAP_NET_ADMIN
    16, // CAP_SYS_MODULE
    17, // CAP_SYS_RAWIO
    19, // CAP_SYS_PTRACE
    21, // CAP_SYS_ADMIN
    22, // CAP_SYS_BOOT
    25, // CAP_SYS_TIME
    27, // CAP_MKNOD
    32, // CAP_MAC_OVERRIDE
    33, // CAP_MAC_ADMIN
    34, // CAP_SYSLOG
    38, // CAP_PERFMON
    39, // CAP_BPF
];

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drop [`DROPPED`] in the calling (child) process. Returns the errno on failure.
///
/// # Safety
/// Async-signal-safe: only raw syscalls on stack data; for a forked child.
pub unsafe fn drop_dangerous() -> Result<(), i32> {
    // SAFETY: prctl/capget/capset on stack data only, in a forked child (this function's contract).
    unsafe {
        let errno = || *libc::__errno_location();
        for cap in DROPPED {
            // EINVAL: the kernel does not know this capability; nothing to drop.
            if libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) < 0
                && errno() != libc::EINVAL
            {
                // EPERM without CAP_SETPCAP: an unprivileged process has none of them.
                if errno() != libc::EPERM {
                    return Err(errno());
                }
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut hdr = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let mut data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        ) < 0
        {
            return Err(errno());
        }
        for cap in DROPPED {
            let (i, bit) = ((*cap / 32) as usize, 1u32 << (*cap % 32));
            data[i].effective &= !bit;
            data[i].permitted &= !bit;
            data[i].inheritable &= !bit;
        }
        if libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) < 0 {
            return Err(errno());
        }
        Ok(())
    }
}
