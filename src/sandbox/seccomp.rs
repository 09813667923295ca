//! The seccomp filter (docs/protocol.md "Sandbox"), compiled before `fork` with `seccompiler`;
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

/// Refused with EPERM for every sandboxed process: kernel objects that reach other
/// processes and no filesystem rule covers — SysV IPC, POSIX message queues and
/// the key retention service (the user keyring is shared by every process of the
/// user).
const ALWAYS_DENY: &[i64] = &[
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    libc::SYS_msgget,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_msgctl,
    libc::SYS_mq_open,
    libc::SYS_mq_unlink,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_notify,
    libc::SYS_mq_getsetattr,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
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

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

/// `socket`/`socketpair` of a unix datagram socket: `type & SOCK_TYPE_MASK` is
/// `SOCK_DGRAM`, or `SOCK_RAW`, which `AF_UNIX` turns into a datagram socket. A
/// datagram socket sends to the address in `sendmsg`'s `msg_name` even when it is
/// connected (a socketpair), so it could reach any pathname socket on the host.
fn unix_dgram_rules() -> Result<Vec<SeccompRule>, String> {
    const SOCK_TYPE_MASK: u64 = 0xf;
    [libc::SOCK_DGRAM, libc::SOCK_RAW]
        .into_iter()
        .map(|ty| {
            SeccompRule::new(vec![
                cond(0, SeccompCmpOp::Eq, libc::AF_UNIX as u64)?,
                cond(1, SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK), ty as u64)?,
            ])
            .map_err(|e| e.to_string())
        })
        .collect()
}

/// Compile the filter for `network`.
pub fn prepare(network: Network) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for s in ALWAYS_DENY {
        rules.insert(*s, vec![]);
    }
    match network {
        Network::Restricted => {
            for s in NET_DENY {
                rules.insert(*s, vec![]);
            }
            for s in [libc::SYS_socket, libc::SYS_socketpair] {
                let mut r = vec![domain_rule(SeccompCmpOp::Ne, libc::AF_UNIX)?];
                r.extend(unix_dgram_rules()?);
                rules.insert(s, r);
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
    let mut prog = BpfProgram::try_from(filter).map_err(|e| format!("seccomp filter: {e}"))?;
    refuse_x32(&mut prog)?;
    Ok(prog)
}

/// x86_64 kernels built with the x32 ABI accept the same calls under numbers with
/// bit 30 set and the same audit architecture, which would step around every rule
/// above: refuse them all (right after the architecture check, which kills a
/// process calling through another architecture such as i386).
#[cfg(target_arch = "x86_64")]
fn refuse_x32(prog: &mut BpfProgram) -> Result<(), String> {
    use seccompiler::sock_filter;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const ARCH_CHECK: usize = 3;
    // BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_JMP|BPF_JSET|BPF_K, BPF_RET|BPF_K.
    let (ld_w_abs, jeq_k, jset_k, ret_k) = (0x20, 0x15, 0x45, 0x06);
    // seccompiler starts with: A = arch; if A == x86_64 skip 1; kill the process.
    let arch_check = prog.get(..ARCH_CHECK).is_some_and(|p| {
        p[0].code == ld_w_abs
            && p[0].k == 4
            && p[1].code == jeq_k
            && p[1].jt == 1
            && p[1].jf == 0
            && p[2].code == ret_k
            && p[2].k == libc::SECCOMP_RET_KILL_PROCESS
    });
    if !arch_check {
        return Err("seccomp filter: unexpected program start".into());
    }
    let insns = [
        // A = seccomp_data.nr
        sock_filter {
            code: ld_w_abs,
            jt: 0,
            jf: 0,
            k: 0,
        },
        sock_filter {
            code: jset_k,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: ret_k,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
    ];
    prog.splice(ARCH_CHECK..ARCH_CHECK, insns);
    Ok(())
}

#[cfg(not(target_arch = "x86_64"))]
fn refuse_x32(_prog: &mut BpfProgram) -> Result<(), String> {
    Ok(())
}
