//! clone3(2) with `CLONE_INTO_CGROUP`: the child is born in its service's
//! cgroup instead of moving itself there.
//!
//! A process that writes itself into `cgroup.procs` takes the cgroup
//! threadgroup lock for writing, which waits for an RCU grace period: on a
//! quiet machine that is milliseconds (measured here: 5 to 13 ms), on every
//! restart. A child created in the cgroup (Linux 5.7) takes no such lock.
//! glibc has no clone3 wrapper, and a child that shares our memory and runs
//! on a stack of its own must not return from the system call into Rust
//! code: it calls the child function straight from the assembly.

use std::sync::atomic::{AtomicBool, Ordering};

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// struct clone_args, up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 or CLONE_INTO_CGROUP was refused once: not tried again.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Start `child(arg)` on `stack` (its lowest address and length) with
/// `flags` (CLONE_* bits; SIGCHLD is the exit signal), born in the cgroup
/// whose directory is `cgroup`. The pid; `None` where the kernel or the
/// architecture cannot (the caller then uses clone and the child moves
/// itself); an errno for a real failure.
///
/// # Safety
/// As for clone(2) with CLONE_VM: `child` must not return, and `stack`
/// and whatever `arg` points to must outlive the child's use of them.
pub unsafe fn spawn_into(
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    stack: (*mut u8, usize),
    flags: libc::c_int,
    cgroup: libc::c_int,
) -> Option<Result<i32, i32>> {
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.0 as u64,
        stack_size: stack.1 as u64,
        cgroup: cgroup as u64,
        ..CloneArgs::default()
    };
    // SAFETY: as the caller promises.
    let r = unsafe { raw(&args, child, arg)? };
    match r {
        pid if pid > 0 => Some(Ok(pid as i32)),
        e if matches!(-e as i32, libc::ENOSYS | libc::EINVAL | libc::E2BIG) => {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            None
        }
        e => Some(Err(-e as i32)),
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn raw(
    args: &CloneArgs,
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> Option<i64> {
    let ret: i64;
    // SAFETY: the parent gets the result in rax (rcx and r11 are the
    // syscall's); the child starts on its own stack, aligned to 16, and
    // calls `child`, which never returns.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") child as usize,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    Some(ret)
}

#[cfg(target_arch = "aarch64")]
unsafe fn raw(
    args: &CloneArgs,
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> Option<i64> {
    let ret: i64;
    // SAFETY: as for x86_64; the child branches to `child`, which never
    // returns.
    unsafe {
        std::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x0, x22",
            "blr x21",
            "brk #0",
            "2:",
            inlateout("x0") args as *const CloneArgs => ret,
            in("x1") std::mem::size_of::<CloneArgs>(),
            in("x8") libc::SYS_clone3,
            in("x21") child as usize,
            in("x22") arg,
            options(nostack),
        );
    }
    Some(ret)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn raw(
    _: &CloneArgs,
    _: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    _: *mut libc::c_void,
) -> Option<i64> {
    None
}
