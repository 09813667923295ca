//! The seccomp filter (PROTOCOL.md §8.6), compiled before `fork` with `seccompiler`;
//! the child only installs the program.

use super::policy::Network;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

fn arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        TargetArch::x86_64
    }
}

/// Refused with EPERM when the network is restricted.
const NET_DENY: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getpeername,
    libc::SYS_getsockname,
    libc::SYS_shutdown,
    libc::SYS_sendto,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
];

const IO_URING: &[i64] = &[
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

fn domain_rule(op: SeccompCmpOp, domain: i32) -> Result<SeccompRule, String> {
    let cond = SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, domain as u64)
        .map_err(|e| e.to_string())?;
    SeccompRule::new(vec![cond]).map_err(|e| e.to_string())
}

/// Compile the filter for `network`.
pub fn prepare(network: Network) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    match network {
        Network::Restricted => {
            for s in NET_DENY {
                rules.insert(*s, vec![]);
            }
            for s in [libc::SYS_socket, libc::SYS_socketpair] {
                rules.insert(s, vec![domain_rule(SeccompCmpOp::Ne, libc::AF_UNIX)?]);
            }
        }
        Network::Enabled => {
            for s in IO_URING {
                rules.insert(*s, vec![]);
            }
            for s in [libc::SYS_socket, libc::SYS_socketpair] {
                rules.insert(s, vec![domain_rule(SeccompCmpOp::Eq, libc::AF_VSOCK)?]);
            }
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp filter: {e}"))
}
