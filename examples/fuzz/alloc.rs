//! A counting global allocator for the fuzz harness: it tracks the bytes live and their
//! peak, and stops the process the moment one allocation or the live total passes
//! [`LIMIT`], saving the input that caused it (an allocation failure would otherwise abort
//! with nothing to reproduce).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// Most bytes one allocation, or all live allocations together, may take: 1 GiB.
pub const LIMIT: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// NUL-terminated path of the file holding the input being run (leaked, never freed).
static INPUT: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// NUL-terminated path the input is copied to when the limit is passed.
static CRASH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

/// `System`, counted.
pub struct Counting;

/// Bytes live now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Highest live total since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Start a new peak measurement from the bytes live now.
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// Name the file holding the current input, and where to copy it if the limit is passed.
pub fn guard(input: &std::path::Path, crash: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let leak = |p: &std::path::Path| {
        CString::new(p.as_os_str().as_bytes())
            .map(|c| c.into_raw())
            .unwrap_or(std::ptr::null_mut())
    };
    INPUT.store(leak(input), Ordering::SeqCst);
    CRASH.store(leak(crash), Ordering::SeqCst);
}

/// Where the harness's own messages go: the process's stderr as it was before
/// [`silence_stderr`].
static OUT_FD: AtomicI32 = AtomicI32::new(2);

/// Send fd 2 to `/dev/null` (the readers' `note:` lines would flood a long run), keeping
/// the original stderr for the harness's messages ([`say`]).
pub fn silence_stderr() {
    // SAFETY: plain fd calls on fds this process owns; failures leave stderr as it is.
    unsafe {
        let saved = libc::dup(2);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if saved >= 0 && null >= 0 && libc::dup2(null, 2) >= 0 {
            OUT_FD.store(saved, Ordering::SeqCst);
        }
        if null >= 0 {
            libc::close(null);
        }
    }
}

/// Write a line to the harness's stderr.
pub fn say(line: &str) {
    write_stderr(line.as_bytes());
    write_stderr(b"\n");
}

fn write_stderr(b: &[u8]) {
    // SAFETY: writes a valid buffer to an open fd; no allocation.
    unsafe {
        libc::write(OUT_FD.load(Ordering::Relaxed), b.as_ptr().cast(), b.len());
    }
}

fn c_len(p: *const libc::c_char) -> usize {
    // SAFETY: `p` is a NUL-terminated string leaked by `guard`.
    unsafe { libc::strlen(p) }
}

/// Report, save the input and exit with status 1, without allocating.
#[cold]
fn over_limit(bytes: usize, what: &[u8]) -> ! {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = bytes;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    write_stderr(b"\nkvsim-fuzz: FAIL: ");
    write_stderr(what);
    write_stderr(b" of ");
    write_stderr(&digits[i..]);
    write_stderr(b" bytes passes the 1 GiB limit; input saved to ");
    let (input, crash) = (INPUT.load(Ordering::SeqCst), CRASH.load(Ordering::SeqCst));
    if !input.is_null() && !crash.is_null() {
        let shown = if copy(input, crash) { crash } else { input };
        // SAFETY: as above; strlen bytes are readable.
        write_stderr(unsafe { std::slice::from_raw_parts(shown.cast(), c_len(shown)) });
    } else {
        write_stderr(b"(no input file set)");
    }
    write_stderr(b"\n");
    // SAFETY: ends the process at once, with no unwinding and no allocation.
    unsafe { libc::_exit(1) }
}

/// Copy file `from` to `to` through a stack buffer (no allocation); whether it worked.
fn copy(from: *const libc::c_char, to: *const libc::c_char) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: NUL-terminated paths from `guard`; reads and writes stay inside `buf`.
    unsafe {
        let src = libc::open(from, libc::O_RDONLY);
        let dst = libc::open(to, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
        let mut ok = src >= 0 && dst >= 0;
        while ok {
            let n = libc::read(src, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                ok = n == 0;
                break;
            }
            ok = libc::write(dst, buf.as_ptr().cast(), n as usize) == n;
        }
        libc::close(src);
        libc::close(dst);
        ok
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    if live > LIMIT {
        over_limit(live, b"live total");
    }
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            over_limit(layout.size(), b"one allocation");
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT {
            over_limit(layout.size(), b"one allocation");
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT {
            over_limit(new_size, b"one allocation");
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}
